"""The engine setting, SQL literals and the DuckDB runner's own behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.analytics.engine import AnalyticsError, engine_name, literal, micros, open_engine


def test_the_engine_is_chosen_by_one_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELGATE_ANALYTICS_ENGINE", raising=False)
    assert engine_name() == "duckdb"
    monkeypatch.setenv("MODELGATE_ANALYTICS_ENGINE", "spark")
    assert engine_name() == "spark"
    with pytest.raises(AnalyticsError, match="unknown analytics engine 'sqlite'"), open_engine("sqlite"):
        pass


def test_literals_refuse_quotes_and_backslashes() -> None:
    assert literal("churn-v2.1", "model") == "'churn-v2.1'"
    with pytest.raises(AnalyticsError, match='model "it\'s" holds a quote'):
        literal("it's", "model")
    with pytest.raises(AnalyticsError, match="holds a quote, backslash"):
        literal("a\\b", "variant")


def test_micros_are_utc_microseconds_since_the_epoch() -> None:
    t = datetime(2026, 12, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert micros(t) == 1_796_083_200_000_001  # date -u -d 2026-12-01 +%s → 1796083200
    assert micros(t.replace(tzinfo=None)) == micros(t)
    assert micros(t.astimezone(datetime.now().astimezone().tzinfo)) == micros(t)


def test_duckdb_reads_hive_partitions_as_strings_and_only_the_hours_asked(tmp_path: Path) -> None:
    for hour in ("09", "10"):
        d = tmp_path / "date=2026-03-01" / f"hour={hour}"
        d.mkdir(parents=True)
        pq.write_table(pa.table({"x": [int(hour)]}), d / "part-0.parquet")
        (d / ".part-1.parquet.tmp").write_bytes(b"half written")
    with open_engine("duckdb") as eng:
        assert eng.register_events(str(tmp_path), ["date=2026-03-01/hour=10", "date=2026-03-01/hour=11"])
        assert eng.columns("events") == {"x": "number", "date": "string", "hour": "string"}
        assert eng.query("SELECT x, date, hour FROM events").to_pylist() == [
            {"x": 10, "date": "2026-03-01", "hour": "10"}
        ]
        assert eng.register_events(str(tmp_path))
        assert eng.query("SELECT SUM(x) AS s FROM events").column(0).to_pylist() == [19]
        assert not eng.register_events(str(tmp_path), ["date=2026-03-02/hour=00"])
        with pytest.raises(AnalyticsError, match="does not exist"):
            eng.register_events(str(tmp_path / "nope"))
        with pytest.raises(AnalyticsError, match=r"DuckDB query failed: .*nope"):
            eng.query("SELECT nope FROM events")


def test_duckdb_spills_a_large_aggregation_within_its_memory_limit(tmp_path: Path) -> None:
    from include.analytics.duck import DuckDBEngine

    eng = DuckDBEngine(memory_limit="64MB", threads=1, temp_dir=tmp_path / "home" / "analytics-tmp")
    try:
        # 3M distinct keys: the hash table (~100 MB) does not fit in 64 MB; without spilling DuckDB
        # would fail with "Out of Memory"
        res = eng.query(
            "SELECT COUNT(*) AS groups, SUM(n) AS rows FROM "
            "(SELECT k, COUNT(*) AS n FROM (SELECT range % 3000000 AS k FROM range(6000000)) GROUP BY k)"
        )
        assert res.to_pylist() == [{"groups": 3_000_000, "rows": 6_000_000}]
        limit = eng.query("SELECT current_setting('memory_limit') AS m").column(0)[0].as_py()
        assert limit == "61.0 MiB"  # 64 MB = 64e6 / 2**20 MiB
    finally:
        eng.close()


def test_a_canary_window_on_duckdb_has_the_judges_columns(tmp_path: Path) -> None:
    from include.canary.events import load_window, samples

    t0 = datetime(2026, 3, 1, 9, 59, 58, tzinfo=UTC)
    d = tmp_path / "date=2026-03-01" / "hour=09"
    d.mkdir(parents=True)
    from modelgate_contracts.events import event_schema

    rows = [
        {"ts": t0 + timedelta(seconds=i), "request_id": f"r{i}", "model": "churn", "variant": v,
         "model_version": "2" if v == "canary" else "1", "unit_id": None, "consent": True,
         "latency_ms": float(i), "status": 200 if i != 1 else 503, "rows": 1, "score": 0.5 if i != 1 else None,
         "shadow": False, "error": None}
        for i, v in enumerate(["canary", "canary", "champion"])
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=event_schema()), d / "part-0.parquet")
    table = load_window(str(tmp_path), "churn", t0, t0 + timedelta(seconds=5))
    assert table.column_names == [
        "variant",
        "model_version",
        "consent",
        "status",
        "latency_ms",
        "score",
        "inputs",
    ]
    can = samples(table, "canary", "2")
    assert can["error_rate"].tolist() == [0.0, 1.0] and can["latency_ms"].tolist() == [0.0, 1.0]
    assert can["score"].tolist() == [0.5], "scores of successful requests only"


def test_two_duckdb_engines_sharing_a_spill_folder_spill_into_their_own_subfolders(tmp_path: Path) -> None:
    # DuckDB names its spill files alike in every process (duckdb_temp_storage_S<size>-0.tmp): two
    # analyses spilling into one folder read each other's blocks ("Could not read enough bytes")
    from include.analytics.duck import DuckDBEngine

    home = tmp_path / "analytics-tmp"
    a = DuckDBEngine(memory_limit="64MB", threads=1, temp_dir=home)
    b = DuckDBEngine(memory_limit="64MB", threads=1, temp_dir=home)
    try:
        dirs = [
            Path(e.query("SELECT current_setting('temp_directory') AS d").column(0)[0].as_py())
            for e in (a, b)
        ]
        assert dirs[0] != dirs[1] and all(d.parent == home and d.is_dir() for d in dirs)
    finally:
        a.close()
        b.close()
    assert list(home.iterdir()) == [], "each engine removes its spill folder on close"
