"""Event analytics on a query engine: the reductions are SQL, run by DuckDB (default) or Spark.

- :mod:`include.analytics.engine`: the engine interface, the one setting that selects it
  (``MODELGATE_ANALYTICS_ENGINE=duckdb|spark``) and :func:`~include.analytics.engine.open_engine`;
- :mod:`include.analytics.duck` and :mod:`include.analytics.spark`: the two runners;
- :mod:`include.analytics.abtest_sql`: the A/B reduction (per unit, then per variant and day of
  first exposure) as one SQL statement;
- :mod:`include.analytics.canary_sql`: the canary judge's window as SQL.

The SQL is written once in the common subset of DuckDB's and Spark's dialects; where a function
differs, the SQL uses Spark's name and the DuckDB runner defines it as a macro (``unix_micros``).
See ``docs/analytics.md``.
"""
