"""Ingestion gives the same tables on DuckDB and PostgreSQL (issue 14): the same crafted and generated
landing files, hostile ones included, loaded twice (a second as-of with re-deliveries and newer
versions), then raw_*, quarantine_*, ingested_files, raw_manual_tags, tag_rules and source_cursors
compared table by table, order-independently (timestamps as UTC instants, JSON columns parsed:
jsonb normalises key order and spacing; everything else, raw_content included, compared exactly).

Also the DuckDB 2.0.0 workaround in the backend: a table created and filled with >= 122,880 rows
in one transaction must read back whole in joins.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers_ingest import (
    ORDER_HEADER,
    REGISTRATION_HEADER,
    event,
    order,
    registration,
    write_csv,
    write_jsonl,
)

from connectors.sources.files import IngestStats, ingest_source
from connectors.sources.http_api import read_cursor, save_cursor
from connectors.sources.manual_tags import ingest_manual_tags
from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.tags import compile_rules, load_tags_config, write_tag_rules
from crmflow.warehouse import Warehouse, apply_migrations, open_warehouse

pytest_plugins = ["helpers_postgres"]  # the postgres_url / postgres_warehouse fixtures

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
SECOND = FIRST + timedelta(days=1)
SOURCES = ("events", "registrations", "orders")
JSON_COLUMNS = {"raw_events": ("properties", "context"), "raw_orders": ("items",)}
# ingested_files.mtime_ns is the landing file's stat, rewritten for each engine's load
UNCOMPARED = {"ingested_files": ("mtime_ns",)}
TABLES = (
    "raw_events", "raw_registrations", "raw_orders", "raw_manual_tags", "tag_rules", "ingested_files",
    "source_cursors", *(f"quarantine_{s}" for s in (*SOURCES, "manual_tags")),
)


def _first_delivery(landing: Path) -> None:
    """Clean rows, in-batch duplicates, version ties, and the hostile cases of test_ingest_hostile."""
    write_jsonl(landing / "events" / "2026-03-01.jsonl", [
        event("m1"), event("m2", user_id="u2", properties={"price": 12.5, "tags": ["a", "b"]}),
        event("m1", event="copy of m1, later line: a duplicate"),
        event("m3", event="View\u0000ed"),  # control character in a text field (JSON escape)
        event("m4", properties={"note": "nul \u0000 inside json"}),  # jsonb cannot store \u0000
        event("m5", context={"ua": "esc \u001b[0m"}),
        event("m6", event="C:\\bin", properties={"path": "C:\\bin", "tab": "a\tb"}),  # not controls
        event("m7", user_id=["not", "scalar"]),  # invalid_id
        event("m8", timestamp="2027-01-01T00:00:00Z"),  # in the future
        event("m9", properties={"blob": "x" * 5000}),  # too_large under the limit below
        '{"message_id": "m10", "type": "track"',  # unparseable
        "[1, 2]", "", "   ",
        event("m11", properties={"ünïcode": "😀 ü", "nested": {"deep": [1, {"k": None}]}}),
    ])
    (landing / "events" / "2026-03-02-bad-utf8.jsonl").write_bytes(
        json.dumps(event("m12")).encode() + b"\n" + b'{"message_id": "m13", "event": "\xff\xfe"}\n')
    write_csv(landing / "registrations" / "a.csv", REGISTRATION_HEADER, [
        registration("u1"), registration("u2", city="Ber\x00lin"),  # raw NUL: quarantined, kept as hex
        registration("u3", first_name="An\x01n"), registration("u4", first_name='Quote "d", comma'),
        registration("u5", updated_at="2026-01-05T00:00:00Z", city="Old"),
        registration("u6", email="not-an-email"), registration("u7", timezone="Mars/Base"),
        'u8,2026-01-01T09:00:00Z,"never closed',
    ])
    write_jsonl(landing / "registrations" / "b.jsonl", [
        registration("u5", updated_at="2026-01-06T00:00:00Z", city="Newer"),  # newer version wins
        registration("u1"),  # same version, same content: a duplicate
        registration("u9", employees="12", email_opt_in="yes"),
    ])
    write_csv(landing / "orders" / "a.csv", ORDER_HEADER, [
        order("o1"), order("o2", amount="-1.00"), order("o3", currency="XXX"),
        order("o4", status="paid", updated_at="2026-02-01T12:00:00Z", amount="10.00"),
        order("o5", items="not json"),
    ])
    write_jsonl(landing / "orders" / "b.jsonl", [
        order("o4", updated_at="2026-02-01T12:00:00Z", amount="11.00"),  # tie: the later file wins
        order("o6", items=[{"sku": "S", "quantity": 1, "unit_price": 900}]),
    ])
    write_csv(landing / "manual_tags" / "tags.csv", "user_id,tag,added_by,added_at", [
        "u1,vip,ops@x.de,2026-03-01T10:00:00Z", "u1,vip,ops@x.de,2026-03-02T10:00:00Z",
        "u2,Bad Tag!,ops@x.de,2026-03-01T10:00:00Z", "u3,vip,ops@x.de,2099-01-01T00:00:00Z", "u4,vip",
    ])


def _second_delivery(landing: Path) -> None:
    """The next as-of: re-delivered events (stored duplicates), newer and older versions of stored rows."""
    write_jsonl(landing / "events" / "2026-03-09.jsonl", [event("m1"), event("m2"), event("m20", user_id="u9")])
    write_jsonl(landing / "registrations" / "c.jsonl", [
        registration("u5", updated_at="2026-01-05T00:00:00Z", city="Stale"),  # older than stored
        registration("u9", updated_at="2026-03-09T00:00:00Z", city="Moved"),
    ])
    write_csv(landing / "orders" / "c.csv", ORDER_HEADER, [
        order("o4", updated_at="2026-02-01T12:00:00Z", amount="12.00"),  # tie, later file: replaces
        order("o1", updated_at="2026-03-09T00:00:00Z", status="refunded"),
    ])
    write_csv(landing / "manual_tags" / "more.csv", "user_id,tag,added_by,added_at", [
        "u1,vip,ops@x.de,2026-03-09T10:00:00Z", "u9,churn_risk,ops@x.de,2026-03-09T10:00:00Z"])


def _load_all(wh: Warehouse, landing: Path, as_of: datetime, **kwargs: Any) -> list[IngestStats]:
    stats = [ingest_source(wh, source, landing, as_of, **kwargs) for source in SOURCES]
    stats.append(ingest_manual_tags(wh, landing, as_of))
    assert all(s.balanced for s in stats), stats
    return stats


def _run(wh: Warehouse, landing: Path) -> list[list[IngestStats]]:
    from connectors.sources.landing_reader import ReadLimits

    limits = ReadLimits(max_line_bytes=4000)
    apply_migrations(wh)
    _first_delivery(landing)
    first = _load_all(wh, landing, FIRST, limits=limits)
    write_tag_rules(wh, compile_rules(load_tags_config(REPO_ROOT / "marketing" / "tags.yaml")), FIRST)
    save_cursor(wh, "orders", "2026-03-01T00:00:00.000000Z", FIRST)
    _second_delivery(landing)
    second = _load_all(wh, landing, SECOND, limits=limits)
    save_cursor(wh, "orders", "2026-03-09T00:00:00.000000Z", SECOND)  # an update of the same key
    save_cursor(wh, "registrations", None, SECOND)
    assert read_cursor(wh, "orders") == "2026-03-09T00:00:00.000000Z"
    return [first, second]


def _generated(wh: Warehouse, landing: Path) -> list[IngestStats]:
    """A generated world with its deliberately dirty rows (every quarantine reason of the generator)."""
    apply_migrations(wh)
    generate_landing(GeneratorConfig(users=150, days=20, end=date(2026, 2, 28), seed=11, dirty_fraction=0.05),
                     landing)
    first = sorted((landing / "events").glob("*.jsonl"))[0]
    (landing / "events" / "zz-redelivery.jsonl").write_bytes(first.read_bytes())
    # small batches: several passes per file, so passes dedupe against rows of earlier passes
    return _load_all(wh, landing, datetime(2026, 3, 1, tzinfo=UTC), batch_bytes=200_000)


def _normalised(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    json_columns = JSON_COLUMNS.get(table, ())

    def value(column: str, v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC)
        if isinstance(v, float):
            return round(v, 9)
        if column in json_columns and v is not None:
            return json.dumps(json.loads(v), sort_keys=True)
        return v

    if not wh.table_exists(table):
        return []
    rows = wh.fetch_arrow(table).to_pylist()
    skip = UNCOMPARED.get(table, ())
    return sorted((tuple((k, value(k, v)) for k, v in sorted(row.items()) if k not in skip) for row in rows),
                  key=repr)


def _tables(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {table: _normalised(wh, table) for table in TABLES}


@pytest.mark.parametrize("world", ["crafted", "generated"])
def test_ingestion_gives_the_same_tables_on_duckdb_and_postgres(world, tmp_path, postgres_warehouse):
    """Each engine loads its own copy of the same landing files, written the same way."""
    load = _run if world == "crafted" else _generated
    with open_warehouse(tmp_path / "warehouse.duckdb") as duck:
        duck_stats = load(duck, tmp_path / "landing")
        duck_tables = _tables(duck)
    shutil.rmtree(tmp_path / "landing")  # the same path again: manual tags record absolute paths
    pg_stats = load(postgres_warehouse, tmp_path / "landing")
    pg_tables = _tables(postgres_warehouse)
    assert pg_stats == duck_stats
    for table in TABLES:
        assert pg_tables[table] == duck_tables[table], table
    assert all(duck_tables[t] for t in ("raw_events", "raw_orders", "quarantine_events", "ingested_files"))


def test_postgres_ingest_analyses_the_tables_it_loads(tmp_path, postgres_warehouse):
    """Planner statistics right after the COPY (autovacuum is off on the test server, and comes late
    when on): every later read of raw_* (dbt's staging, the journeys) is planned on real row counts."""
    def analysed() -> set[str]:
        return {name for (name,) in postgres_warehouse.fetch_rows(
            "select relname from pg_stat_user_tables where last_analyze is not null")}

    apply_migrations(postgres_warehouse)
    assert not analysed() & {"raw_events", "raw_orders", "ingested_files"}
    _first_delivery(tmp_path / "landing")
    ingest_source(postgres_warehouse, "events", tmp_path / "landing", FIRST)
    assert {"raw_events", "quarantine_events", "ingested_files"} <= analysed()
    assert "raw_orders" not in analysed()
    assert postgres_warehouse.scalar("select reltuples from pg_class where relname = 'raw_events'") > 0


def test_the_crafted_world_exercises_every_merge_rule(tmp_path):
    """What the equality test above compares is the documented behaviour (checked once, on DuckDB)."""
    with open_warehouse(tmp_path / "warehouse.duckdb") as wh:
        (events, regs, orders, tags), (events2, regs2, orders2, tags2) = _run(wh, tmp_path / "landing")
        assert (events.rows_loaded, events.duplicates_skipped) == (5, 1)  # m1 m2 m6 m11 m12; m1's copy
        assert events.quarantine_reasons == {
            "control_character": 3, "invalid_id": 1, "invalid_utf8": 1, "not_an_object": 1,
            "timestamp_out_of_range": 1, "too_large": 1, "unparseable_json": 1}
        assert (events2.rows_loaded, events2.duplicates_skipped) == (1, 2)  # m1, m2 already stored
        assert wh.fetch_rows("select city from raw_registrations where user_id in ('u5', 'u9') order by user_id") == [
            ("Newer",), ("Moved",)]
        assert (regs2.rows_loaded, regs2.duplicates_skipped) == (1, 1)
        assert wh.fetch_rows("select order_id, amount, status from raw_orders where order_id in ('o1', 'o4')"
                             " order by 1") == [("o1", Decimal("25.00"), "refunded"), ("o4", Decimal("12.00"), "paid")]
        assert orders2.rows_loaded == 2
        nul = wh.scalar("select raw_content from quarantine_registrations where field = 'city'")
        assert nul.startswith("hex:") and "\x00" in bytes.fromhex(nul[4:]).decode()
        assert (tags.rows_loaded, tags.duplicates_skipped, tags2.rows_loaded, tags2.duplicates_skipped) == (1, 1, 1, 1)
        assert wh.fetch_rows('select resource, "cursor" from source_cursors order by 1') == [
            ("orders", "2026-03-09T00:00:00.000000Z"), ("registrations", None)]


@pytest.mark.parametrize("replace", [False, True])
def test_a_table_created_and_filled_in_one_transaction_reads_whole_in_joins(tmp_path, replace):
    """DuckDB 2.0.0 returned no rows from joins over a table created empty and then given >= 122,880
    rows in the same transaction (ingestion lost every order of a 100k-user landing); the DuckDB
    backend creates such tables with one `create ... as select`."""
    n = 130_000
    keys = pa.table({"k": [f"k{i:06d}" for i in range(n)], "v": pa.array(range(n), pa.int64())})
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        wh.execute("create table stored (k varchar primary key, v bigint)")
        wh.write_arrow(keys.slice(0, 1000), "stored")
        with wh.transaction():
            if replace:
                wh.write_arrow(keys, "staged", mode="replace")
            else:
                wh.create_temp_table("staged", keys)
            assert wh.scalar("select count(*) from staged s left join stored r on r.k = s.k") == n
            assert wh.scalar("select count(*) from staged s where s.k in (select k from stored)") == 1000


def test_duckdb_ingest_parses_on_the_warehouse_connection_and_leaves_it_as_it_was(tmp_path, monkeypatch):
    """On DuckDB the parser is the warehouse's own connection (issue 20: loaded rows never cross Python
    as Arrow): the memory limit is the ingest's while it runs and the warehouse's afterwards, and no
    parser temp table is left behind, also when a batch fails."""
    import connectors.sources.merge as merge

    seen = []
    real_load = merge.load_valid_rows

    def spy(warehouse, parser, contract, loaded_at):
        seen.append((parser is warehouse.native,
                     warehouse.scalar("select current_setting('memory_limit')")))
        real_load(warehouse, parser, contract, loaded_at)

    monkeypatch.setattr("connectors.sources.files.load_valid_rows", spy)
    monkeypatch.setattr("connectors.sources.files.MEMORY_LIMIT", "300MB")
    with open_warehouse(tmp_path / "warehouse.duckdb") as wh:
        limit = "select current_setting('memory_limit')"
        own_limit = wh.scalar(limit)  # the default: restored exactly (a set of the rounded text would not be)
        wh.execute("set memory_limit = '300MB'")
        ingest_limit = wh.scalar(limit)
        wh.execute("reset memory_limit")
        temp_tables = "select count(*) from duckdb_tables() where temporary"
        stats = _run(wh, tmp_path / "landing")
        assert all(s.balanced for run in stats for s in run)
        assert seen and seen == [(True, ingest_limit)] * len(seen)
        assert (wh.scalar(limit), wh.scalar(temp_tables)) == (own_limit, 0)
        (tmp_path / "landing" / "events" / "2026-03-20.jsonl").write_text(json.dumps(event("m30")) + "\n")

        def broken(*args):
            raise RuntimeError("the warehouse write failed")

        monkeypatch.setattr("connectors.sources.files.load_valid_rows", broken)
        with pytest.raises(RuntimeError, match="the warehouse write failed"):
            ingest_source(wh, "events", tmp_path / "landing", SECOND + timedelta(days=1))
        assert (wh.scalar(limit), wh.scalar(temp_tables)) == (own_limit, 0)
        assert wh.scalar("select count(*) from ingested_files where path like '%2026-03-20%'") == 0
