"""Formats that the router and the domain library must agree on, defined once.

Nothing here imports ``include``, Airflow, MLflow or the router: only the standard library,
``pyarrow`` (lazily, for the event schema) and ``pydantic`` (the routes model). Modules:

- :mod:`modelgate_contracts.events`: prediction event fields and their Arrow schema.
- :mod:`modelgate_contracts.uris`: the ``models:/`` URI grammar.
- :mod:`modelgate_contracts.tags`: manifest tag names (``modelgate.*``).
- :mod:`modelgate_contracts.routes`: the routes document model.
- :mod:`modelgate_contracts.hashing`: file digests.
- :mod:`modelgate_contracts.residency`: which regions a residency tag allows; the events-root region marker.
"""
