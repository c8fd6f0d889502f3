"""DuckDB runner: embedded, streaming over Parquet, with a memory limit and a spill folder.

Local event roots are read with ``read_parquet`` (Hive partitions ``date``/``hour`` kept as
strings, so the date filter prunes folders; columns matched by name, so files of an older router
without the ``inputs`` column read it as null). Roots given as URLs (``s3://``, ``gs://``...) are read
through a ``pyarrow.dataset`` on pyarrow's filesystem of that URL, which DuckDB scans with the
projection and filters pushed down; no DuckDB extension has to be downloaded.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.analytics.engine import AnalyticsError, Kind

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_MACROS = (
    "CREATE MACRO unix_micros(t) AS epoch_us(t)",
    # input_vector: see include.analytics.engine.INPUT_VECTOR (Spark defines the same function)
    # an object of arrays of JSON numbers (or nulls) with distinct keys, as Spark's from_json reads it;
    # else NULL (DuckDB would read "2.5", true and the non-JSON tokens NaN/Infinity as numbers, and
    # fail on a repeated key even inside TRY)
    "CREATE MACRO mg_input_map(j) AS TRY(CAST(CASE WHEN json_valid(j) AND json_type(j) = 'OBJECT' "
    "AND len(json_keys(j)) = len(list_distinct(json_keys(j))) "
    "AND COALESCE(list_bool_and(list_transform(CAST(json_extract(j, '$.*[*]') AS JSON[]), "
    "x -> json_type(x) = 'NULL' OR (json_type(x) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
    "AND regexp_full_match(CAST(x AS VARCHAR), '-?[0-9][0-9.eE+-]*')))), TRUE) "
    "THEN CAST(j AS JSON) END AS MAP(VARCHAR, DOUBLE[])))",
    "CREATE MACRO mg_map_values(m) AS flatten(list_transform(list_sort(map_keys(m)), k -> m[k]))",
    "CREATE MACRO mg_no_nulls(v) AS CASE WHEN list_count(v) = len(v) THEN v END",
    "CREATE MACRO input_vector(j) AS mg_no_nulls(mg_map_values(mg_input_map(j)))",
    # list and map access of the drift mapping (include.analytics.drift_sql); positions from 1
    "CREATE MACRO mg_len(v) AS len(v)",
    "CREATE MACRO mg_only(m) AS CASE WHEN len(map_keys(m)) = 1 THEN map_values(m)[1] END",
    "CREATE MACRO mg_get(m, k) AS m[k]",
    "CREATE MACRO mg_at(v, i) AS list_extract(v, i)",
)
"""Spark's names for functions DuckDB spells differently, and the functions both define
(``input_vector``), so one SQL text runs on both."""


def _path_literal(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _kind(sql_type: str) -> Kind:
    t = sql_type.upper()
    if t == "BOOLEAN":
        return "bool"
    if t.startswith(("TIMESTAMP", "DATE")):
        return "timestamp"
    if t in ("VARCHAR", "STRING") or t.startswith("VARCHAR"):
        return "string"
    if t.startswith(("DECIMAL", "DOUBLE", "FLOAT", "REAL")) or t.endswith("INT") or t in (
        "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT"
    ):  # fmt: skip
        return "number"
    return "other"


def _is_url(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


class DuckDBEngine:
    """An in-memory DuckDB connection with a memory limit.

    Args:
        memory_limit: DuckDB's ``memory_limit`` (e.g. ``384MB``); past it operators spill.
        threads: worker threads.
        temp_dir: spill folder (created when needed). Each engine spills into its own new subfolder
            of it, removed by :meth:`close`: DuckDB names its spill files alike in every process, so
            two analyses sharing one folder (two tasks on one worker) would read each other's blocks.
    """

    name = "duckdb"

    def __init__(self, memory_limit: str = "384MB", threads: int = 2, temp_dir: Path | None = None) -> None:
        import duckdb

        config: dict[str, Any] = {
            "memory_limit": memory_limit,
            "threads": max(1, int(threads)),
            "preserve_insertion_order": False,
        }
        self._spill: Path | None = None
        if temp_dir is not None:
            temp_dir.mkdir(parents=True, exist_ok=True)
            self._spill = Path(tempfile.mkdtemp(prefix="duckdb-", dir=temp_dir))
            config["temp_directory"] = str(self._spill)
        try:
            self._con = duckdb.connect(":memory:", config=config)
        except duckdb.Error as e:
            self._remove_spill()
            raise AnalyticsError(f"cannot start DuckDB with {config}: {e}") from e
        self._con.execute("SET enable_progress_bar = false")  # a task's log, not a terminal
        for m in _MACROS:
            self._con.execute(m)
        self._keep: list[Any] = []

    def register_events(self, root: str, hours: list[str] | None = None, merge_schemas: bool = True) -> bool:
        """See :meth:`include.analytics.engine.Engine.register_events`."""
        if _is_url(root):
            return self._register_remote(root, hours)
        base = Path(root.removeprefix("file://"))
        if not base.exists():
            raise AnalyticsError(f"{base} does not exist")
        if hours is None:
            if next(base.glob("date=*/hour=*/*.parquet"), None) is None:
                return False
            globs = [str(base / "date=*" / "hour=*" / "*.parquet")]
        else:
            globs = [str(base / h / "*.parquet") for h in hours if next((base / h).glob("*.parquet"), None)]
            if not globs:
                return False
        files = "[" + ", ".join(_path_literal(g) for g in globs) + "]"
        self._execute(
            f"CREATE OR REPLACE VIEW events AS SELECT * FROM read_parquet({files}, hive_partitioning = true, "
            f"union_by_name = {str(merge_schemas).lower()}, hive_types = {{'date': VARCHAR, 'hour': VARCHAR}})"
        )
        return True

    def _register_remote(self, root: str, hours: list[str] | None) -> bool:
        import pyarrow as pa
        import pyarrow.dataset as ds
        from pyarrow import fs as pafs

        try:
            filesystem, base = pafs.FileSystem.from_uri(root)
            part = ds.partitioning(pa.schema([("date", pa.string()), ("hour", pa.string())]), flavor="hive")
            if hours is None:
                dataset = ds.dataset(base, format="parquet", filesystem=filesystem, partitioning=part)
            else:
                files: list[str] = []
                for h in hours:
                    sel = pafs.FileSelector(f"{base.rstrip('/')}/{h}", allow_not_found=True)
                    files += [i.path for i in filesystem.get_file_info(sel)
                              if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
                              and not i.base_name.startswith(".")]  # fmt: skip
                if not files:
                    return False
                dataset = ds.dataset(
                    sorted(files), format="parquet", filesystem=filesystem, partitioning=part,
                    partition_base_dir=base,
                )  # fmt: skip
        except (OSError, pa.ArrowException) as e:
            raise AnalyticsError(f"cannot read router events under {root}: {e}") from e
        if not dataset.files:
            return False
        self._keep.append(dataset)
        self._con.register("events_dataset", dataset)
        self._execute("CREATE OR REPLACE VIEW events AS SELECT * FROM events_dataset")
        return True

    def register_table(self, name: str, path: str, fmt: str) -> None:
        """See :meth:`include.analytics.engine.Engine.register_table`."""
        p = Path(path)
        if not _is_url(path) and not p.exists():
            raise AnalyticsError(f"{p} does not exist")
        if fmt == "csv":
            src = f"read_csv({_path_literal(path)}, header = true, auto_detect = true)"
        elif fmt == "parquet":
            target = str(p / "**" / "*.parquet") if p.is_dir() else path
            src = f"read_parquet({_path_literal(target)})"
        else:
            raise AnalyticsError(f"{path}: unknown format {fmt!r}; known: parquet, csv")
        self._execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM {src}", f"cannot open {path} as {fmt}")

    def columns(self, view: str) -> dict[str, Kind]:
        """See :meth:`include.analytics.engine.Engine.columns`."""
        rows = self._con.execute(f"DESCRIBE {view}").fetchall()
        return {str(r[0]): _kind(str(r[1])) for r in rows}

    def query(self, sql: str) -> pa.Table:
        """See :meth:`include.analytics.engine.Engine.query`."""
        import duckdb

        try:
            return self._con.execute(sql).to_arrow_table()
        except duckdb.Error as e:
            raise AnalyticsError(f"DuckDB query failed: {e}") from e

    def _execute(self, sql: str, what: str = "DuckDB failed") -> None:
        import duckdb

        try:
            self._con.execute(sql)
        except duckdb.Error as e:
            raise AnalyticsError(f"{what}: {e}") from e

    def close(self) -> None:
        """See :meth:`include.analytics.engine.Engine.close`."""
        self._con.close()
        self._keep.clear()
        self._remove_spill()

    def _remove_spill(self) -> None:
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None
