"""Spark runner: the same SQL on a Spark session (local mode in tests, a cluster in production).

The session is created once per process (``SparkSession.builder.getOrCreate``) with the session
time zone UTC and partition column type inference off (``date``/``hour`` stay strings, as in
DuckDB). :meth:`SparkEngine.close` drops the views but keeps the session: starting a JVM costs
seconds, and an Airflow task's process ends with the task anyway. On a cluster, the analysis runs
inside a ``spark-submit`` job (Airflow's ``SparkSubmitOperator``), see ``docs/analytics.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.analytics.engine import AnalyticsError, Kind

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""Settings every session of the analytics gets."""


FUNCTIONS = (
    # input_vector: see include.analytics.engine.INPUT_VECTOR (DuckDB defines the same macro). Spark's
    # SQL functions cannot hold lambdas (nor functions built on them: transform, array_sort, array_compact):
    # the map's entries are sorted as (key, value) structs by sort_array, and a null value is found as the
    # first element of the ascending sort_array (nulls first).
    # from_json keeps a repeated key twice and reads NaN/Infinity tokens: both make the record NULL, as in DuckDB
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_json_map(j STRING) RETURNS MAP<STRING, ARRAY<DOUBLE>> "
    "RETURN from_json(j, 'map<string,array<double>>', map('allowNonNumericNumbers', 'false'))",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_input_map(j STRING) RETURNS MAP<STRING, ARRAY<DOUBLE>> "
    "RETURN CASE WHEN size(array_distinct(map_keys(mg_json_map(j)))) = size(mg_json_map(j)) THEN mg_json_map(j) END",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_map_values(m MAP<STRING, ARRAY<DOUBLE>>) RETURNS ARRAY<DOUBLE> "
    "RETURN flatten(sort_array(map_entries(m)).value)",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_no_nulls(v ARRAY<DOUBLE>) RETURNS ARRAY<DOUBLE> "
    "RETURN CASE WHEN size(v) = 0 OR try_element_at(sort_array(v), 1) IS NOT NULL THEN v END",
    "CREATE OR REPLACE TEMPORARY FUNCTION input_vector(j STRING) RETURNS ARRAY<DOUBLE> "
    "RETURN mg_no_nulls(mg_map_values(mg_input_map(j)))",
    # list and map access of the drift mapping (include.analytics.drift_sql); positions from 1, NULL
    # when absent (ANSI mode would raise for [] out of range or a missing key)
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_len(v ARRAY<DOUBLE>) RETURNS INT RETURN size(v)",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_only(m MAP<STRING, ARRAY<DOUBLE>>) RETURNS ARRAY<DOUBLE> "
    "RETURN CASE WHEN size(m) = 1 THEN try_element_at(map_values(m), 1) END",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_get(m MAP<STRING, ARRAY<DOUBLE>>, k STRING) RETURNS ARRAY<DOUBLE> "
    "RETURN try_element_at(m, k)",
    "CREATE OR REPLACE TEMPORARY FUNCTION mg_at(v ARRAY<DOUBLE>, i INT) RETURNS DOUBLE RETURN try_element_at(v, i)",
)
"""SQL functions the statements share with DuckDB (where DuckDB has macros of the same names)."""


def _kind(spark_type: str) -> Kind:
    t = spark_type.lower()
    if t == "boolean":
        return "bool"
    if t.startswith(("timestamp", "date")):
        return "timestamp"
    if t == "string" or t.startswith(("varchar", "char")):
        return "string"
    if t.startswith(("decimal", "double", "float")) or t in ("bigint", "int", "smallint", "tinyint"):
        return "number"
    return "other"


def session(master: str = "local[2]") -> Any:
    """Return the process's Spark session, creating it on first use.

    Args:
        master: the master URL for a new session (ignored when one exists).

    Returns:
        The ``pyspark.sql.SparkSession``.

    Raises:
        AnalyticsError: pyspark is not installed or the JVM cannot start (Java missing).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise AnalyticsError(
            "the Spark engine needs pyspark (pip install pyspark, see docs/analytics.md)"
        ) from e
    builder = SparkSession.builder.master(master).appName("modelgate-analytics")
    for k, v in SPARK_CONF.items():
        builder = builder.config(k, v)
    if master.startswith("local"):  # one machine: as many shuffle partitions as cores, no more
        builder = builder.config("spark.sql.shuffle.partitions", "2")
    try:
        return builder.getOrCreate()
    except Exception as e:  # py4j/JVM start-up failures have no common base class
        raise AnalyticsError(f"cannot start Spark ({master}); is Java 17+ installed? {e}") from e


class SparkEngine:
    """Views and queries on the process's Spark session.

    Args:
        master: the master URL (``local[N]``, ``spark://...``, ``yarn``) for a new session.
    """

    name = "spark"

    def __init__(self, master: str = "local[2]") -> None:
        self._spark = session(master)
        self._views: list[str] = []
        try:
            for f in FUNCTIONS:
                self._spark.sql(f)
        except Exception as e:  # pyspark's ParseException / AnalysisException
            raise self._analysis_error("cannot define the analytics' SQL functions on Spark", e) from e

    def _analysis_error(self, what: str, e: Exception) -> AnalyticsError:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return AnalyticsError(f"{what}: {msg}")

    def _view(self, name: str, df: Any) -> None:
        df.createOrReplaceTempView(name)
        self._views.append(name)

    def register_events(self, root: str, hours: list[str] | None = None, merge_schemas: bool = True) -> bool:
        """See :meth:`include.analytics.engine.Engine.register_events`."""
        local = "://" not in root or root.startswith("file://")
        base = root.removeprefix("file://")
        if local:
            if not Path(base).exists():
                raise AnalyticsError(f"{base} does not exist")
            folders = [Path(base) / h for h in hours] if hours is not None else [Path(base)]
            pattern = "*.parquet" if hours is not None else "date=*/hour=*/*.parquet"
            paths = [str(f) for f in folders if next(f.glob(pattern), None) is not None]
            if not paths:
                return False
        else:
            paths = [f"{root.rstrip('/')}/{h}" for h in hours] if hours is not None else [root]
        try:
            reader = self._spark.read.option("basePath", base if local else root)
            df = reader.option("mergeSchema", str(merge_schemas).lower()).parquet(
                *paths
            )  # older files lack 'inputs'
        except Exception as e:  # pyspark's AnalysisException and py4j errors
            raise self._analysis_error(f"cannot read router events under {root}", e) from e
        self._view("events", df)
        return True

    def register_table(self, name: str, path: str, fmt: str) -> None:
        """See :meth:`include.analytics.engine.Engine.register_table`."""
        if "://" not in path and not Path(path).exists():
            raise AnalyticsError(f"{path} does not exist")
        try:
            if fmt == "csv":
                df = self._spark.read.csv(path, header=True, inferSchema=True)
            elif fmt == "parquet":
                df = self._spark.read.parquet(path)
            else:
                raise AnalyticsError(f"{path}: unknown format {fmt!r}; known: parquet, csv")
            df.schema  # noqa: B018 (reads the footer now, so a bad file fails here)
        except AnalyticsError:
            raise
        except Exception as e:
            raise self._analysis_error(f"cannot open {path} as {fmt}", e) from e
        self._view(name, df)

    def columns(self, view: str) -> dict[str, Kind]:
        """See :meth:`include.analytics.engine.Engine.columns`."""
        return {n: _kind(t) for n, t in self._spark.table(view).dtypes}

    def query(self, sql: str) -> pa.Table:
        """See :meth:`include.analytics.engine.Engine.query`."""
        try:
            return self._spark.sql(sql).toArrow()
        except Exception as e:
            raise self._analysis_error("Spark query failed", e) from e

    def close(self) -> None:
        """See :meth:`include.analytics.engine.Engine.close`."""
        for v in self._views:
            self._spark.catalog.dropTempView(v)
        self._views.clear()
