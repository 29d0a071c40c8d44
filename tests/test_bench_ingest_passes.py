"""Performance fix guard: a JSONL file bigger than the batch size is staged in several SQL passes
(bounded memory at 1M users) and must load exactly what a single pass loads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors.sources.files import _passes, _PendingFile, ingest_source
from connectors.sources.landing_reader import LandingFile
from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.warehouse import connect

LOADED_AT = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = {
    "raw_events": "select * exclude (_loaded_at) from raw_events order by message_id",
    "quarantine_events": "select * exclude (quarantined_at) from quarantine_events order by all",
    "ingested_files": "select * exclude (ingested_at) from ingested_files order by path",
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate_landing(GeneratorConfig(users=300, days=20, end=date(2026, 2, 28), seed=7, dirty_fraction=0.05), out)
    # the same events re-delivered in a second file: duplicates across passes and files
    first = sorted((out / "events").glob("*.jsonl"))[0]
    (out / "events" / "zz-redelivery.jsonl").write_bytes(first.read_bytes())
    return out


def _load(landing: Path, db: Path, batch_bytes: int) -> tuple[dict[str, list[tuple]], tuple[int, ...]]:
    with connect(db) as con:
        stats = ingest_source(con, "events", landing, LOADED_AT, batch_bytes=batch_bytes)
        tables = {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}
    assert stats.balanced
    return tables, (stats.rows_read, stats.rows_loaded, stats.duplicates_skipped, stats.rows_quarantined)


def test_multi_pass_staging_loads_the_same_rows_as_one_pass(landing: Path, tmp_path: Path) -> None:
    size = max(p.stat().st_size for p in (landing / "events").glob("*.jsonl"))
    one_pass, one_stats = _load(landing, tmp_path / "one.duckdb", batch_bytes=10 * size)
    # about 7 passes per file, several files per batch boundary
    many, many_stats = _load(landing, tmp_path / "many.duckdb", batch_bytes=max(size // 7, 1000))
    assert one_stats == many_stats
    assert one_stats[2] > 0 and one_stats[3] > 0  # duplicates and quarantined rows were exercised
    for name in TABLES:
        assert many[name] == one_pass[name], name


def test_only_oversize_jsonl_files_get_passes_of_their_own(tmp_path: Path) -> None:
    def pending(name: str, data: bytes) -> _PendingFile:
        return _PendingFile(LandingFile(tmp_path / name, name, name.rsplit(".", 1)[1]), data, "h")

    big = b"".join(b'{"n": %d}\n' % i for i in range(1000))
    small = b'{"n": 1}\n{"n": 2}\n'
    passes = list(_passes([pending("a.jsonl", small), pending("b.csv", b"x,y\n1,2\n"),
                           pending("c.jsonl", big), pending("d.jsonl", small)], batch_bytes=len(big) // 4 + 1))
    shapes = [([t.num_rows for t in j], [t.num_rows for t in c]) for j, c in passes]
    assert shapes[0] == ([2], [2])  # the small files before the big one: one pass, as before
    assert [s[0][0] for s in shapes[1:-1]] == [250] * 4 and shapes[-1] == ([2], [])


def test_ingestion_bounds_the_parser_memory_and_leaves_the_warehouse_setting(
        landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The landing parser (an in-memory DuckDB) runs under CRMFLOW_INGEST_MEMORY_LIMIT; the
    warehouse connection's own memory limit is never changed."""
    import connectors.sources.files as files

    seen = []
    real = files._ingest
    monkeypatch.setattr(files, "MEMORY_LIMIT", "200MB")
    monkeypatch.setattr(files, "_ingest", lambda run, *a: seen.append(
        run.parser.execute("select current_setting('memory_limit')").fetchall()[0][0]) or real(run, *a))
    with connect(tmp_path / "wh.duckdb") as con:
        con.execute("set memory_limit = '1GiB'")
        assert files.ingest_source(con, "events", landing, LOADED_AT).balanced
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "1.0 GiB"
    assert seen == ["190.7 MiB"]
