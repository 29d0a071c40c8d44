"""The dbt project builds on PostgreSQL with the same results as on DuckDB (issue 14).

One generated world (seeded: 600 users, 150 days, orders in USD and CNY, dirty rows quarantined)
is ingested into a DuckDB warehouse in two deliveries; after each, `dbt build` (every model, seed
and test) runs on DuckDB and, on a fresh PostgreSQL database holding copies of the same input
tables, `dbt build --target postgres`. The second build is incremental on both engines (event
days, order lines, kpi_daily, the histories), and the business time zone crosses a daylight
saving change between the two as-ofs. After each build every model and seed is compared table by
table (order-independent, floats to 1e-9, timestamps as UTC instants, JSON by value).

Python outputs that dbt reads (customer_clusters, operator_tasks, task_outcomes) are crafted
here with set-based SQL and copied to both engines, so the models over them are compared too.
Nothing is excluded. Skipped without a PostgreSQL server, except when CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from helpers_dbt_postgres import (
    copy_tables,
    differences,
    duckdb_rows,
    fresh_database,
    pg_connect,
    postgres_env,
    postgres_rows,
    require_server,
    run_dbt,
    show_inline,
)

from connectors.sources.files import ingest_source
from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.settings import REPO_ROOT
from crmflow.tags import compile_rules, load_tags_config, write_tag_rules
from crmflow.tasks.outcomes import OUTCOMES_DDL
from crmflow.tasks.schema import ensure_task_tables
from crmflow.warehouse import apply_migrations, connect, ensure_raw_tables, open_warehouse
from crmflow.warehouse.target import parse_target

pytestmark = pytest.mark.slow

WORLD_END = date(2026, 3, 31)
FIRST_DELIVERY_END = date(2026, 3, 24)
# Berlin moves to summer time on 2026-03-29, between the two as-ofs.
DELIVERIES = [
    (GeneratorConfig(users=600, days=150, end=WORLD_END, seed=14, emit_until=FIRST_DELIVERY_END),
     datetime(2026, 3, 25, 6, tzinfo=UTC)),
    (GeneratorConfig(users=600, days=150, end=WORLD_END, seed=14, emit_since=date(2026, 3, 25)),
     datetime(2026, 4, 1, 6, tzinfo=UTC)),
]
TIMEZONE = "Europe/Berlin"
RAW_TABLES = {name: "crm_raw" for name in (
    "raw_events", "raw_registrations", "raw_orders", "raw_manual_tags", "tag_rules")}
# where crmflow keeps them on PostgreSQL (crmflow/tasks/ddl.py: tasks in ops, outcomes in raw)
PYTHON_OUTPUTS = {"customer_clusters": "crm_analytics", "operator_tasks": "crm_ops", "task_outcomes": "crm_raw"}
# Relations that must hold rows after each build, so an empty comparison cannot pass for a real one.
MUST_HAVE_ROWS = ["customer_profile", "customer_rfm", "customer_segments", "customer_tags", "kpi_daily",
                  "kpi_ltv", "stg_shop__order_items", "int_customer__event_days", "banner_ctr",
                  "operator_efficiency", "customer_lifecycle_history"]


def craft_python_outputs(db: Path, as_of: datetime) -> None:
    """Stand-ins for the intelligence and task assets' tables, derived from the raw rows."""
    with connect(db) as con:
        con.execute("""create or replace table customer_clusters as
            select user_id, cast(hash(user_id) % 4 as integer) as cluster_id,
                   'cluster ' || cast(hash(user_id) % 4 as varchar) as cluster_label
            from raw_registrations""")
        ensure_task_tables(con)
        con.execute(OUTCOMES_DDL)
        con.execute("delete from operator_tasks")
        con.execute("delete from task_outcomes")
        # one task per third registered user, created 1..40 days before the as-of
        con.execute("""insert into operator_tasks (task_id, user_id, operator_id, rule, policy, source,
                priority, created_at, assigned_at, due_at, expires_at, status, status_updated_at)
            select 't-' || user_id, user_id,
                   case when n % 5 = 0 then null else 'op' || cast(n % 3 as varchar) end,
                   'rule_' || cast(n % 2 as varchar), 'rule_' || cast(n % 2 as varchar), 'recall',
                   cast(n % 7 as double), created_at, created_at, created_at + interval 2 day,
                   created_at + interval 5 day,
                   ['open', 'done', 'no_answer', 'converted', 'expired', 'unassigned'][1 + n % 6],
                   created_at
            from (select user_id, row_number() over (order by user_id) as n,
                         ?::timestamptz - to_days(cast(1 + hash(user_id) % 40 as integer)) as created_at
                  from raw_registrations) as users
            where n % 3 = 0""", [as_of])
        con.execute("""insert into task_outcomes (task_id, operator_id, outcome, handled_at, handling_seconds,
                source_file, line_number, loaded_at)
            select task_id, operator_id, status, created_at + interval 1 day, 60 + length(user_id) * 7,
                   'outcomes.csv', row_number() over (order by task_id), ?::timestamptz
            from operator_tasks where status in ('done', 'no_answer', 'converted')""", [as_of])


def deliver(db: Path, landing: Path, config: GeneratorConfig, as_of: datetime) -> None:
    generate_landing(config, landing)
    with connect(db) as con:
        ensure_raw_tables(con)
        for source in ("registrations", "orders", "events"):
            ingest_source(con, source, landing, loaded_at=as_of)
        write_tag_rules(con, compile_rules(load_tags_config(REPO_ROOT / "marketing" / "tags.yaml")), as_of)
        con.execute("""insert or ignore into raw_manual_tags
            select user_id, 'vip_hand_picked', 'ops@example.com', registered_at, 'manual.csv',
                   row_number() over (order by user_id), ?::timestamptz
            from raw_registrations where hash(user_id) % 9 = 0""", [as_of])
        add_text_order_ties(con, as_of)
    craft_python_outputs(db, as_of)


def add_text_order_ties(con: duckdb.DuckDBPyConnection, as_of: datetime) -> None:
    """Rows whose result depends on how text sorts (an en-US collation puts 'apps' before 'Books'
    and 'alice' before 'Zed', bytes do the opposite): a device linked to two users at the same
    instant (identity_map takes the smallest user_id) and an order whose two categories have equal
    spend (favourite_category takes the first)."""
    day = as_of - timedelta(days=3)
    con.execute("""insert into raw_events (message_id, type, user_id, anonymous_id, event_at,
            properties, context, _source_file, _source_line, _loaded_at)
        select 'tie-' || user_id, 'identify', user_id, 'anon-tie', ?::timestamptz, '{}', '{}', 'ties.jsonl', 1,
               ?::timestamptz
        from (values ('Zed-tie'), ('alice-tie')) as users(user_id)
        where not exists (select 1 from raw_events where message_id = 'tie-' || users.user_id)""", [day, as_of])
    con.execute("""insert into raw_orders (order_id, user_id, ordered_at, updated_at, status, amount,
            currency, items, channel, _source_file, _source_line, _loaded_at)
        select 'tie-order', 'tie-buyer', ?::timestamptz, ?::timestamptz, 'paid', 20.00, 'USD',
               '[{"sku": "b1", "category": "Books", "quantity": 1, "unit_price": 10.0},
                 {"sku": "a1", "category": "apps", "quantity": 1, "unit_price": 10.0}]', 'web', 'ties.csv', 1,
               ?::timestamptz
        where not exists (select 1 from raw_orders where order_id = 'tie-order')""", [day, day, as_of])


# What the text-order ties resolve to on DuckDB (byte order); the comparison then requires the same.
TIES = """select (select user_id from identity_map where anonymous_id = 'anon-tie'),
                  (select favourite_category from customer_profile where user_id = 'tie-buyer')"""


def compared_relations(work: Path) -> list[str]:
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    return sorted(node["name"] for node in manifest["nodes"].values()
                  if node["resource_type"] in ("model", "seed") and node["package_name"] == "crmflow")


def built_tables(work: Path) -> list[str]:
    """The models materialised as tables (table, incremental) and the seeds: what dbt must analyse."""
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    return sorted(node["name"] for node in manifest["nodes"].values()
                  if node["package_name"] == "crmflow" and (node["resource_type"] == "seed" or (
                      node["resource_type"] == "model"
                      and node["config"]["materialized"] in ("table", "incremental"))))


def analyze_lines(logs: Path) -> list[str]:
    """The analyze statements in dbt's debug logs (each on its own line after the query comment;
    dbt.log and its rotated parts)."""
    return [line for log in sorted(logs.glob("dbt.log*")) for line in log.read_text().splitlines()
            if line.lstrip().lower().startswith("analyze ")]


def never_analysed(dbname: str, tables: dict[str, str]) -> list[str]:
    """Those of `tables` (name -> schema) that ANALYZE has never run on (autovacuum is off here)."""
    with pg_connect(dbname) as pg, pg.cursor() as cur:
        cur.execute("select schemaname || '.' || relname from pg_stat_user_tables where last_analyze is not null")
        analysed = {row[0] for row in cur.fetchall()}
    return sorted(f"{schema}.{name}" for name, schema in tables.items() if f"{schema}.{name}" not in analysed)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    require_server()
    with fresh_database() as dbname:
        # the operational tables dbt reads as sources (ledger, enrolments, goals, delivery events) come
        # from crmflow's migrations, as on a real warehouse; the raw tables and the Python outputs are
        # copied from the DuckDB side (copy_tables creates them with DuckDB's columns)
        with open_warehouse(parse_target(f"postgresql://postgres@127.0.0.1:5432/{dbname}")) as wh:
            apply_migrations(wh)
            for table, schema in {**RAW_TABLES, **PYTHON_OUTPUTS}.items():
                wh.execute(f"drop table if exists {schema}.{table} cascade")
        yield dbname


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> list[dict]:
    """Both builds on both engines; per build: the relations, their row counts and their differences."""
    work = tmp_path_factory.mktemp("dbt_postgres")
    duck = work / "warehouse.duckdb"
    pg_env = postgres_env(f"postgresql://postgres@127.0.0.1:5432/{pg_database}")
    results = []
    for number, (config, as_of) in enumerate(DELIVERIES, 1):
        deliver(duck, work / f"landing{number}", config, as_of)
        copy_tables(duck, pg_database, {**RAW_TABLES, **PYTHON_OUTPUTS})
        dbt_vars = {"as_of": as_of.isoformat(), "business_timezone": TIMEZONE, "reporting_currency": "USD"}
        run_dbt(["build"], {"CRMFLOW_WAREHOUSE": str(duck)}, work / "duckdb", dbt_vars)
        run_dbt(["build"], pg_env, work / "postgres", dbt_vars)
        relations = compared_relations(work / "duckdb")
        with duckdb.connect(str(duck), read_only=True) as con:
            counts = {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in relations}
            ties = con.execute(TIES).fetchall()
        results.append({
            "relations": relations,
            "never_analysed": never_analysed(pg_database, {
                **{name: "crm_analytics" for name in built_tables(work / "postgres")},
                **RAW_TABLES, **PYTHON_OUTPUTS}),
            # the hooks render to nothing on DuckDB: no analyze statement in its dbt debug log
            "analyze_lines": {engine: analyze_lines(work / engine / "logs")
                              for engine in ("duckdb", "postgres")},
            "counts": counts,
            "ties": ties,
            "differences": {name: differences(duckdb_rows(duck, name),
                                              postgres_rows(pg_database, f"crm_analytics.{name}"))
                            for name in relations},
        })
    return results


@pytest.mark.parametrize("build", [0, 1], ids=["first_build", "incremental_build"])
def test_every_model_is_the_same_on_postgres(builds: list[dict], build: int) -> None:
    result = builds[build]
    assert len(result["relations"]) >= 40  # every model and seed of the project (41 today), not a handful
    assert result["ties"] == [("Zed-tie", "Books")]  # byte order: 'Z' < 'a', 'B' < 'a'
    empty = [name for name in MUST_HAVE_ROWS if result["counts"][name] == 0]
    assert not empty, f"relations without rows (the world must exercise them): {empty}"
    differing = {name: found for name, found in result["differences"].items() if found}
    assert not differing, "\n".join(f"{name}: {lines}" for name, lines in differing.items())


def test_postgres_has_statistics_of_every_table_dbt_builds_or_reads(builds: list[dict]) -> None:
    """The analyze post-hook and on-run-start (macros/statistics.sql): without statistics PostgreSQL
    plans dbt's tables as 200-row guesses (int_tag_user_features did not finish at 100k users)."""
    assert builds[0]["never_analysed"] == []
    assert builds[1]["never_analysed"] == []
    assert builds[1]["analyze_lines"]["duckdb"] == []
    assert len(builds[1]["analyze_lines"]["postgres"]) >= 40  # the same log shows them on PostgreSQL


def test_postgres_env_from_url_keeps_the_password_out_of_the_profile_variables() -> None:
    env = postgres_env("postgresql://crm%40user:s3cr%3At@db.internal:6543/crm")
    assert env == {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_PG_HOST": "db.internal", "CRMFLOW_PG_PORT": "6543",
                   "CRMFLOW_PG_USER": "crm@user", "CRMFLOW_PG_DBNAME": "crm", "PGTZ": "UTC",
                   "PGPASSWORD": "s3cr:t"}
    with pytest.raises(ValueError, match="postgresql://"):
        postgres_env("postgresql://db.internal:6543/")


# Halves and near-halves where rounding the double (DuckDB) and rounding its decimal expansion
# (PostgreSQL numeric) disagree, e.g. 0.00015 (stored as 0.000149999...) and 1.005.
ROUNDING_VALUES = [0.00015, -0.00015, 1.00005, 0.03125, 2.5, -2.5, 0.49999999999999994, 1.005, 0.285,
                   12345.675, 1 / 3, 2 / 3, 1e-12, 0.0]


def test_round_double_gives_duckdbs_figures_on_postgres(tmp_path: Path, pg_database: str) -> None:
    values = ", ".join(f"(cast({value!r} as double precision))" for value in ROUNDING_VALUES)
    sql = (f"select x, {{{{ round_double('x', 4) }}}} as r4, {{{{ round_double('x', 2) }}}} as r2 "
           f"from (values {values}) as v(x)")
    on_duckdb = show_inline(sql, {"CRMFLOW_WAREHOUSE": str(tmp_path / "show.duckdb")}, tmp_path / "duckdb")
    on_postgres = show_inline(sql, postgres_env(f"postgresql://postgres@127.0.0.1:5432/{pg_database}"),
                              tmp_path / "postgres")
    assert len(on_duckdb) == len(ROUNDING_VALUES)
    assert sorted(map(str, on_postgres)) == sorted(map(str, on_duckdb))
    assert {"x": 0.00015, "r4": 0.0001, "r2": 0.0} in on_postgres  # numeric rounding would say 0.0002


def test_differences_are_order_independent_and_exact_beyond_1e_9() -> None:
    berlin = timezone(timedelta(hours=2))
    duck = (["id", "amount", "at", "payload", "flag"],
            [("a", 1.0, datetime(2026, 3, 29, 10, tzinfo=UTC), {"k": [1, 2]}, True),
             ("b", Decimal("2.50"), None, None, False)])
    same = (["id", "amount", "at", "payload", "flag"],
            [("b", 2.5 + 1e-12, None, None, False),
             ("a", 1, datetime(2026, 3, 29, 12, tzinfo=berlin), {"k": [1, 2]}, True)])
    assert differences(duck, same) == []
    off = (same[0], [("b", 2.5 + 1e-6, None, None, False), same[1][1]])
    assert differences(duck, off) and "amount" in differences(duck, off)[0]
    assert differences(duck, (same[0], [same[1][0], ("a", 1, None, {"k": [2, 1]}, 1)]))
    assert differences(duck, (["id"], [])) == [f"columns differ: duckdb {duck[0]} vs postgres ['id']"]


def test_missing_server_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    nothing_listening = {"host": "127.0.0.1", "port": 1, "user": "postgres"}
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="127.0.0.1:1"):
        require_server(nothing_listening)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL not reachable at 127.0.0.1:1"):
        require_server(nothing_listening)
