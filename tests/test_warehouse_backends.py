"""Every Warehouse method on both backends: DuckDB on a temp file, PostgreSQL on a fresh database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from crmflow.warehouse import (
    MIGRATIONS,
    Warehouse,
    apply_migrations,
    connect,
    ensure_ops_tables,
    ensure_raw_tables,
    open_warehouse,
    warehouse_for,
)
from crmflow.warehouse.migrations import Migration, applied_versions

pytest_plugins = ["helpers_postgres"]  # the postgres_url / postgres_warehouse fixtures

TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(params=["duckdb", "postgres"])
def wh(request: pytest.FixtureRequest, tmp_path) -> Warehouse:
    if request.param == "postgres":
        yield request.getfixturevalue("postgres_warehouse")
        return
    with open_warehouse(tmp_path / "warehouse.duckdb") as warehouse:
        yield warehouse


def count(wh: Warehouse, relation: str) -> int:
    return wh.fetch_rows(f"select count(*) from {relation}")[0][0]


# -- Arrow round trip --------------------------------------------------------------------------------

TRICKY_STRINGS = [
    "plain",
    "",
    None,
    "double \" and single ' quotes",
    "new\nline",
    "crlf\r\nend",
    "tab\there",
    "back\\slash \\N \\t",
    "\\.",
    "unicode é ß 漢字 🙂",
    "comma, semicolon; pipe|",
]
N = len(TRICKY_STRINGS)
ROUND_TRIP = pa.table(
    {
        "row_no": pa.array(range(N), pa.int64()),
        "s": pa.array(TRICKY_STRINGS, pa.string()),
        "big": pa.array([2**62, -(2**63), 2**63 - 1, None, 0, -1, 7, 8, 9, 10, 11], pa.int64()),
        "small": pa.array([1, None, -(2**31), 2**31 - 1, 0, 5, 6, 7, 8, 9, 10], pa.int32()),
        "amount": pa.array(
            [Decimal("0.00"), Decimal("-12345678.90"), Decimal("9999999999999999.99"), None, Decimal("0.01")]
            + [Decimal("1.10")] * 6,
            pa.decimal128(18, 2),
        ),
        "happened_at": pa.array(
            [
                datetime(2024, 3, 31, 1, 59, 59, 999999, tzinfo=UTC),
                datetime(1970, 1, 1, tzinfo=UTC),
                None,
                datetime(2099, 12, 31, 23, 0, tzinfo=UTC),
            ]
            + [datetime(2025, 1, 1, 12, 30, 1, 5, tzinfo=UTC)] * 7,
            TS,
        ),
        "day": pa.array([date(2024, 2, 29), date(1900, 1, 1), None] + [date(2025, 6, 1)] * 8, pa.date32()),
        "flag": pa.array([True, False, None] + [True] * 8, pa.bool_()),
        "x": pa.array(
            [
                0.1,
                1 / 3,
                1e-300,
                1.7976931348623157e308,
                -0.0,
                None,
                float("nan"),
                float("inf"),
                -2.5,
                3.0,
                123456.789,
            ],
            pa.float64(),
        ),
        "doc": pa.array(
            ['{"a": 1, "b": [true, null], "s": "q\\"uote\\nnl"}', "[]", None, '"text"', '{"é": "漢字"}']
            + ["{}"] * 6,
            pa.string(),
        ),
    }
)
ROUND_TRIP_DDL = """
create table {raw}.round_trip (
    row_no bigint, s varchar, big bigint, small integer, amount decimal(18, 2), happened_at timestamptz, day date,
    flag boolean, x double precision, doc {json}
)
"""


def assert_same_values(got: pa.Table, expected: pa.Table) -> None:
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        if name == "doc":  # jsonb normalises spacing and key order: compare the parsed documents
            parse = [None if v is None else json.loads(v) for v in got[name].to_pylist()]
            assert parse == [None if v is None else json.loads(v) for v in expected[name].to_pylist()]
        elif name == "x":  # repr tells nan, inf and -0.0 apart
            assert [repr(v) for v in got[name].to_pylist()] == [repr(v) for v in expected[name].to_pylist()]
        else:
            assert got[name].to_pylist() == expected[name].to_pylist(), name


def test_arrow_round_trip_keeps_every_type_and_value(wh: Warehouse) -> None:
    wh.ensure_schemas()
    wh.execute(wh.render(ROUND_TRIP_DDL))
    wh.write_arrow(ROUND_TRIP, wh.relation("raw", "round_trip"))
    got = wh.fetch_arrow(f"select * from {wh.relation('raw', 'round_trip')} order by row_no")
    expected = ROUND_TRIP
    assert got.schema == pa.schema(
        [
            ("row_no", pa.int64()),
            ("s", pa.string()),
            ("big", pa.int64()),
            ("small", pa.int32()),
            ("amount", pa.decimal128(18, 2)),
            ("happened_at", TS),
            ("day", pa.date32()),
            ("flag", pa.bool_()),
            ("x", pa.float64()),
            ("doc", pa.string()),
        ]
    )
    assert_same_values(got, expected)


def test_replace_creates_the_table_from_arrow_types(wh: Warehouse) -> None:
    table = ROUND_TRIP.set_column(
        ROUND_TRIP.schema.get_field_index("doc"), "doc", ROUND_TRIP["doc"].cast(pa.json_(pa.string()))
    )
    wh.write_arrow(table, "from_arrow", mode="replace")
    got = wh.fetch_arrow("from_arrow")  # a bare relation name reads the whole table
    assert got.schema.field("doc").type == pa.string()
    assert got.schema.field("amount").type == pa.decimal128(18, 2)
    assert got.schema.field("happened_at").type == TS
    assert_same_values(got.sort_by("row_no"), ROUND_TRIP)
    doc_type = wh.fetch_rows(
        "select data_type from information_schema.columns where table_name = 'from_arrow' and column_name = 'doc'"
    )[0][0]
    assert doc_type.lower() == {"duckdb": "json", "postgres": "jsonb"}[wh.dialect]


def test_replace_replaces_rows_and_columns(wh: Warehouse) -> None:
    wh.write_arrow(pa.table({"a": [1, 2, 3]}), "swap", mode="replace")
    wh.write_arrow(pa.table({"b": ["only"]}), "swap", mode="replace")
    assert wh.fetch_arrow("swap").to_pydict() == {"b": ["only"]}


def test_append_matches_columns_by_name_and_leaves_the_rest_null(wh: Warehouse) -> None:
    wh.execute("create table people (id integer, name varchar, score double precision)")
    wh.write_arrow(pa.table({"score": [1.5], "id": pa.array([7], pa.int32())}), "people")
    wh.write_arrow(pa.table({"name": ["ann"], "id": pa.array([8], pa.int32())}), "people")
    rows = wh.fetch_rows("select id, name, score from people order by id")
    assert rows == [(7, None, 1.5), (8, "ann", None)]


def test_write_arrow_rejects_an_unknown_mode(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match="mode 'merge'"):
        wh.write_arrow(pa.table({"a": [1]}), "t", mode="merge")


def test_large_reads_come_back_whole_across_batches(wh: Warehouse) -> None:
    wh.read_batch_rows = 7  # PostgreSQL: 15 fetches of the server-side cursor; DuckDB ignores it
    got = wh.fetch_arrow(
        "select g as i, 'row ' || cast(g as varchar) as label from generate_series(1, 100) as t(g)"
    )
    assert got.num_rows == 100
    assert sorted(got["i"].to_pylist()) == list(range(1, 101))
    assert got.schema.field("label").type == pa.string()


def test_empty_results_keep_their_schema(wh: Warehouse) -> None:
    wh.ensure_schemas()
    wh.execute(wh.render(ROUND_TRIP_DDL))
    got = wh.fetch_arrow(f"select * from {wh.relation('raw', 'round_trip')} where big = $big", {"big": -5})
    assert got.num_rows == 0
    assert got.schema.field("amount").type == pa.decimal128(18, 2)
    assert got.schema.field("happened_at").type == TS


# -- statements and parameters -------------------------------------------------------------------


def test_named_parameters_work_the_same_on_both_backends(wh: Warehouse) -> None:
    wh.execute("create table codes (code varchar, n integer)")
    wh.execute("insert into codes values ('50% off', 1), ('$price', 2), ('plain', 3)")
    # '%' in a literal and '$price' in a literal are text, not placeholders; $n is bound twice.
    rows = wh.fetch_rows(
        "select code from codes where (code like '%\\%%' escape '\\' or code = '$price') and n <= $n and $n > 0 "
        "order by n",
        {"n": 2, "unused": "ignored"},
    )
    assert rows == [("50% off",), ("$price",)]
    wh.execute("update codes set n = $n where code = $code", {"n": 30, "code": "plain"})
    assert wh.fetch_rows("select n from codes where code = 'plain'") == [(30,)]


def test_missing_or_positional_parameters_are_clear_errors(wh: Warehouse) -> None:
    with pytest.raises(ValueError, match=r"\$user_id have no value; given: other"):
        wh.fetch_rows("select $user_id", {"other": 1})
    with pytest.raises(TypeError, match=r"named parameters \(\$name\)"):
        wh.execute("select $a", [1])  # type: ignore[arg-type]


# -- transactions ---------------------------------------------------------------------------------


def test_rollback_leaves_nothing(wh: Warehouse) -> None:
    wh.execute("create table kept (a integer primary key)")
    wh.write_arrow(pa.table({"a": pa.array([1], pa.int32())}), "kept")
    with pytest.raises(RuntimeError, match="boom"), wh.transaction():
        wh.execute("create table half_made (a integer)")
        wh.write_arrow(pa.table({"a": pa.array([2, 3], pa.int32())}), "kept")
        wh.upsert("kept", pa.table({"a": pa.array([4], pa.int32())}), ["a"])
        wh.create_temp_table("scratch", pa.table({"a": [1]}))
        raise RuntimeError("boom")
    assert not wh.table_exists("half_made")
    assert not wh.table_exists("scratch")
    assert wh.fetch_rows("select a from kept") == [(1,)]
    with wh.transaction():  # the connection is usable again and commits
        wh.execute("insert into kept values (5)")
    assert count(wh, "kept") == 2


def test_a_failed_statement_rolls_back_the_transaction(wh: Warehouse) -> None:
    wh.execute("create table uniq (a integer primary key)")
    with pytest.raises(Exception), wh.transaction():  # noqa: B017 (engine-specific constraint error)
        wh.execute("insert into uniq values (1)")
        wh.execute("insert into uniq values (1)")
    assert count(wh, "uniq") == 0


def test_transactions_do_not_nest(wh: Warehouse) -> None:
    with wh.transaction(), pytest.raises(RuntimeError, match="do not nest"), wh.transaction():
        pass


def test_committed_rows_are_seen_by_a_new_connection(wh: Warehouse) -> None:
    with wh.transaction():
        wh.write_arrow(pa.table({"a": [1, 2]}), "durable", mode="replace")
    with warehouse_for(wh.target).connect() as other:
        assert count(other, "durable") == 2


# -- temp tables and table_exists ---------------------------------------------------------------------


def test_temp_tables_join_real_tables_and_stay_on_their_connection(wh: Warehouse) -> None:
    wh.write_arrow(
        pa.table({"user_id": ["u1", "u2", "u3"], "plan": ["a", "b", "a"]}), "users", mode="replace"
    )
    name = wh.create_temp_table("wanted", pa.table({"user_id": ["u1", "u3", "u9"]}))
    rows = wh.fetch_rows(f"select u.user_id from users u join {name} w using (user_id) order by 1")
    assert rows == [("u1",), ("u3",)]
    wh.create_temp_table("wanted", pa.table({"user_id": ["u2"]}))  # replaced, not an error
    assert wh.fetch_rows("select user_id from wanted") == [("u2",)]
    assert wh.table_exists("wanted")
    with warehouse_for(wh.target).connect() as other:
        assert other.table_exists("users") and not other.table_exists("wanted")


def test_table_exists_sees_tables_views_and_schemas(wh: Warehouse) -> None:
    apply_migrations(wh)
    wh.execute("create view recent_orders as select * from raw_orders")
    assert wh.table_exists("raw_orders")
    assert wh.table_exists(wh.relation("raw", "raw_orders"))
    assert wh.table_exists(wh.relation("ops", "suppression_list"))
    assert wh.table_exists("recent_orders")
    assert not wh.table_exists("no_such_table")
    if wh.dialect == "postgres":  # on DuckDB every logical schema is main for now
        assert not wh.table_exists(wh.relation("exports", "raw_orders"))
    wh.execute("drop view recent_orders")
    wh.drop_table(wh.relation("raw", "raw_orders"))
    wh.drop_table(wh.relation("raw", "raw_orders"))  # if exists: dropping twice is fine
    assert not wh.table_exists("raw_orders")
    with pytest.raises(ValueError, match="not a table name"):
        wh.table_exists("raw_orders; drop table x")


# -- upsert and insert_new_returning -------------------------------------------------------------


def make_suppressions(rows: list[tuple[str, str, str]]) -> pa.Table:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "channel": [r[0] for r in rows],
            "address": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
            "source": ["manual"] * len(rows),
            "suppressed_at": pa.array([at] * len(rows), TS),
        }
    )


def test_upsert_inserts_new_keys_and_updates_existing_ones(wh: Warehouse) -> None:
    apply_migrations(wh)
    suppressions = wh.relation("ops", "suppression_list")
    wh.upsert(
        suppressions,
        make_suppressions([("email", "a@x", "bounce"), ("sms", "+1", "unsubscribe")]),
        ["channel", "address"],
    )
    wh.upsert(
        suppressions,
        make_suppressions([("email", "a@x", "spamreport"), ("email", "b@x", "manual")]),
        ["channel", "address"],
    )
    rows = wh.fetch_rows(f"select channel, address, reason, user_id from {suppressions} order by 1, 2")
    assert rows == [
        ("email", "a@x", "spamreport", None),
        ("email", "b@x", "manual", None),
        ("sms", "+1", "unsubscribe", None),
    ]


def test_upsert_of_key_only_rows_inserts_the_new_ones(wh: Warehouse) -> None:
    wh.execute("create table seen (k varchar primary key)")
    wh.upsert("seen", pa.table({"k": ["a", "b"]}), ["k"])
    wh.upsert("seen", pa.table({"k": ["b", "c"]}), ["k"])
    assert wh.fetch_rows("select k from seen order by k") == [("a",), ("b",), ("c",)]


def test_duplicate_or_missing_keys_are_rejected_before_writing(wh: Warehouse) -> None:
    wh.execute("create table seen (k varchar primary key, v integer)")
    dupes = pa.table({"k": ["a", "a", "b"], "v": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"seen: 1 key\(s\) appear more than once.*'k': 'a'"):
        wh.upsert("seen", dupes, ["k"])
    with pytest.raises(ValueError, match="more than once"):
        wh.insert_new_returning("seen", dupes, ["k"])
    with pytest.raises(ValueError, match=r"key column\(s\) id not in the Arrow table"):
        wh.upsert("seen", dupes, ["id"])
    assert count(wh, "seen") == 0


def test_insert_new_returning_returns_only_the_keys_it_inserted(wh: Warehouse) -> None:
    wh.execute(
        "create table ledger (journey varchar, user_id varchar, state varchar, primary key (journey, user_id))"
    )
    first = pa.table({"journey": ["j1", "j1"], "user_id": ["u1", "u2"], "state": ["planned", "planned"]})
    inserted = wh.insert_new_returning("ledger", first, ["journey", "user_id"])
    assert sorted(zip(*inserted.to_pydict().values(), strict=True)) == [("j1", "u1"), ("j1", "u2")]
    assert inserted.schema == pa.schema([("journey", pa.string()), ("user_id", pa.string())])
    second = pa.table({"journey": ["j1", "j1", "j2"], "user_id": ["u2", "u3", "u1"], "state": ["sent"] * 3})
    inserted = wh.insert_new_returning("ledger", second, ["journey", "user_id"])
    assert sorted(zip(*inserted.to_pydict().values(), strict=True)) == [("j1", "u3"), ("j2", "u1")]
    # the existing (j1, u2) row is not touched: do nothing, not update
    assert wh.fetch_rows("select state from ledger where user_id = 'u2'") == [("planned",)]
    none = wh.insert_new_returning("ledger", second, ["journey", "user_id"])
    assert none.num_rows == 0 and none.column_names == ["journey", "user_id"]


# -- schemas and migrations -------------------------------------------------------------------------

ALL_TABLES = {
    "raw": [
        "raw_events",
        "raw_registrations",
        "raw_orders",
        "ingested_files",
        "quarantine_events",
        "quarantine_registrations",
        "quarantine_orders",
        "quarantine_manual_tags",
        "raw_manual_tags",
        "tag_rules",
    ],
    "ops": ["suppression_list", "delivery_events", "delivery_event_files", "schema_migrations"],
}


def test_migrations_create_every_table_in_its_schema_once(wh: Warehouse) -> None:
    assert apply_migrations(wh) == [m.version for m in MIGRATIONS]
    assert apply_migrations(wh) == []  # applied twice = applied once
    assert applied_versions(wh) == [m.version for m in MIGRATIONS]
    assert count(wh, wh.relation("ops", "schema_migrations")) == len(MIGRATIONS)
    for logical, tables in ALL_TABLES.items():
        for table in tables:
            assert wh.table_exists(wh.relation(logical, table)), (logical, table)
    if wh.dialect == "postgres":
        schemas = {r[0] for r in wh.fetch_rows("select schema_name from information_schema.schemata")}
        assert {"crm_raw", "crm_ops", "crm_analytics", "crm_exports"} <= schemas
        assert not wh.table_exists("public.raw_events")


def test_a_failing_migration_leaves_neither_tables_nor_record(wh: Warehouse) -> None:
    broken = (
        *MIGRATIONS,
        Migration(99, "broken", "create table {ops}.half_done (a integer);\nselect * from nowhere;"),
    )
    with pytest.raises(Exception, match="nowhere"):
        apply_migrations(wh, broken)
    assert applied_versions(wh) == [m.version for m in MIGRATIONS]
    assert not wh.table_exists(wh.relation("ops", "half_done"))
    with pytest.raises(ValueError, match="unique and ascending"):
        apply_migrations(wh, (MIGRATIONS[0], MIGRATIONS[0]))


def test_json_columns_use_the_engine_json_type(wh: Warehouse) -> None:
    apply_migrations(wh)
    rows = wh.fetch_rows(
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'raw_events' and column_name in ('properties', 'context') order by 1"
    )
    json_type = {"duckdb": "json", "postgres": "jsonb"}[wh.dialect]
    assert [(name, kind.lower()) for name, kind in rows] == [
        ("context", json_type),
        ("properties", json_type),
    ]


def test_migration_1_on_duckdb_matches_the_legacy_ensure_functions(tmp_path) -> None:
    """The modules not yet ported call ensure_*_tables; both paths must give the same tables."""
    columns_sql = (
        "select table_name, column_name, data_type, is_nullable from information_schema.columns "
        "where table_name <> 'schema_migrations' order by table_name, ordinal_position"
    )
    with connect(tmp_path / "legacy.duckdb") as con:
        ensure_raw_tables(con)
        ensure_ops_tables(con)
        legacy = con.execute(columns_sql).fetchall()
        legacy_keys = con.execute(
            "select table_name, constraint_text from duckdb_constraints() order by all"
        ).fetchall()
    with open_warehouse(tmp_path / "migrated.duckdb") as wh:
        apply_migrations(wh, MIGRATIONS[:1])  # later migrations add the ported modules' own tables
        assert wh.fetch_rows(columns_sql) == legacy
        migrated_keys = wh.fetch_rows(
            "select table_name, constraint_text from duckdb_constraints() "
            "where table_name <> 'schema_migrations' order by all"
        )
        assert migrated_keys == legacy_keys
    assert len({row[0] for row in legacy}) == 13


def test_timestamps_in_any_arrow_zone_are_stored_as_the_same_instant(wh: Warehouse) -> None:
    wh.execute("create table instants (seen_at timestamptz)")
    instant = datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=UTC)  # 08:00 in New York (EDT)
    wh.write_arrow(
        pa.table({"seen_at": pa.array([instant], pa.timestamp("us", tz="America/New_York"))}), "instants"
    )
    assert wh.fetch_arrow("instants")["seen_at"].to_pylist() == [instant]
    assert wh.fetch_rows("select cast(seen_at as varchar) from instants")[0][0].startswith(
        "2024-07-01 12:00:00.123456"
    )


def test_postgres_only_result_types_map_to_arrow(postgres_warehouse: Warehouse) -> None:
    wh = postgres_warehouse
    wh.execute("create type mood as enum ('happy', 'sad')")
    got = wh.fetch_arrow(
        "select 'happy'::mood as m, '7e720b8f-b7b6-4989-831f-9ca67fa30e93'::uuid as u, 1.25::numeric / 3 as ratio,"
        " array['a', null]::text[] as tags, interval '1 day 2 seconds' as gap, '\\x00ff'::bytea as raw,"
        ' \'{"b": 1, "a": [2]}\'::json as doc, null::mood as nothing'
    )
    assert got.schema == pa.schema(
        [
            ("m", pa.string()),
            ("u", pa.string()),
            ("ratio", pa.float64()),  # unconstrained numeric: no fixed scale for a decimal128
            ("tags", pa.list_(pa.string())),
            ("gap", pa.duration("us")),
            ("raw", pa.binary()),
            ("doc", pa.string()),
            ("nothing", pa.string()),
        ]
    )
    row = got.to_pylist()[0]
    assert row["m"] == "happy" and row["u"] == "7e720b8f-b7b6-4989-831f-9ca67fa30e93"
    assert row["ratio"] == pytest.approx(1.25 / 3) and row["tags"] == ["a", None]
    assert row["gap"].total_seconds() == 86402 and row["raw"] == b"\x00\xff"
    assert row["doc"] == '{"b": 1, "a": [2]}' and row["nothing"] is None  # json (not jsonb) keeps its text


def test_concurrent_migrations_apply_each_version_once(
    postgres_warehouse: Warehouse, postgres_url: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def migrate() -> list[int]:
        with open_warehouse(postgres_url) as wh:
            return apply_migrations(wh)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: migrate(), range(3)))
    # each version once, by whichever process took its lock first (they may share the work)
    assert sorted(v for applied in results for v in applied) == [m.version for m in MIGRATIONS]
    assert count(postgres_warehouse, "crm_ops.schema_migrations") == len(MIGRATIONS)


def test_a_warehouse_is_only_usable_while_connected(tmp_path) -> None:
    wh = warehouse_for(tmp_path / "closed.duckdb")
    with pytest.raises(RuntimeError, match="is not connected"):
        wh.execute("select 1")
    with wh.connect():
        assert wh.fetch_rows("select 1") == [(1,)]
    with pytest.raises(RuntimeError, match="is not connected"):
        wh.fetch_rows("select 1")


def test_postgres_names_the_column_whose_arrow_type_it_cannot_store(postgres_warehouse: Warehouse) -> None:
    wh = postgres_warehouse
    nested = pa.table({"user_id": ["u1"], "items": pa.array([[1, 2]], pa.list_(pa.int64()))})
    for mode in ("replace", "append"):
        with pytest.raises(
            ValueError, match=r"carts: column 'items' has Arrow type list<item: int64>.*JSON string"
        ):
            wh.write_arrow(nested, "carts", mode=mode)
    assert not wh.table_exists("carts")  # replace rolled back: nothing half-made


def test_empty_tables_write_and_read(wh: Warehouse) -> None:
    empty = pa.table({"k": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    wh.write_arrow(empty, "nothing_yet", mode="replace")
    wh.write_arrow(empty, "nothing_yet")
    got = wh.fetch_arrow("nothing_yet")
    assert got.num_rows == 0 and got.schema == empty.schema
