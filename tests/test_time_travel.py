"""Time-consistent, deterministic runs (issue 16 item 3 and its "Done when"), on one small world.

tests/helpers_time_travel.py runs, in one subprocess: a full run as of T2; a full run as of T1 < T2
(refused: cumulative state); the analytics rebuild as of T1; a full run as of T2 again; then late
changes (a refund of the oldest order, back-dated events linking a new device) and a full run as of
T3, next to a `dbt build --full-refresh` of the same data. Checked here:

- the T1 tables hold nothing after T1 (every date and timestamp column of every rebuilt model past
  staging; checked by hand on one run: kpi_daily ends on T1's day, no mart row is later);
- both T2 results are identical, table by table (order-independent), state tables included;
- after the late changes every dbt model equals its full refresh (the histories aside: they are
  cumulative state, a full refresh restarts them), and kpi_daily shows the refund.

Four runs of the whole graph and a full dbt build: a few minutes on an idle machine (marker
time_travel: `make test-time-travel`, which .ci/run runs after `make test`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from helpers_lineage import small_world

pytestmark = [pytest.mark.slow, pytest.mark.time_travel]

REPO = Path(__file__).resolve().parent.parent
T1 = datetime(2026, 6, 5, 6, tzinfo=UTC)
T2 = datetime(2026, 6, 20, 6, tzinfo=UTC)
T3 = datetime(2026, 6, 21, 6, tzinfo=UTC)
# Run bookkeeping that records each run, not state a later run reads back as data.
# Logs of runs, not state: which migrations and files were applied, and one row per model fit (a rerun
# compares its clusters with the previous fit: users_same_cluster_share).
RUN_LOGS = {"schema_migrations", "ingested_files", "intelligence_model_runs"}
# Dates that are scheduled, not events: a contract ends after the as-of by nature.
SCHEDULED_DATES = {"contract_end_date"}


@pytest.fixture(scope="module")
def travelled(tmp_path_factory: pytest.TempPathFactory, dbt_manifest: Path) -> Path:
    root = tmp_path_factory.mktemp("time_travel")
    env = small_world(root)
    done = subprocess.run([sys.executable, str(REPO / "tests" / "helpers_time_travel.py"), str(root),
                           T2.isoformat(), T1.isoformat(), T3.isoformat()],
                          env=env, capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return root


def _tables(db: Path) -> dict[str, list[tuple[str, str]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select table_name, column_name, data_type from information_schema.columns "
                           "where table_schema = 'main' and table_catalog = current_database() "
                           "order by table_name, ordinal_position").fetchall()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, []).append((column, data_type))
    return tables


def _differences(a: Path, b: Path, tables: list[str]) -> dict[str, tuple[int, int]]:
    """Tables whose rows differ (rows only in a, rows only in b), compared as multisets."""
    found = {}
    with duckdb.connect() as con:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        for table in tables:
            only_a = con.execute(f"select count(*) from (select * from a.{table} except all select * from b.{table})"
                                 ).fetchone()[0]
            only_b = con.execute(f"select count(*) from (select * from b.{table} except all select * from a.{table})"
                                 ).fetchone()[0]
            if only_a or only_b:
                found[table] = (only_a, only_b)
    return found


def _result(root: Path) -> dict:
    return json.loads((root / "result.json").read_text())


def test_going_back_over_cumulative_state_is_refused_in_one_line(travelled: Path) -> None:
    message = _result(travelled)["refused"]
    assert message and "\n" not in message
    assert T1.isoformat() in message and T2.isoformat() in message and "--analytics-only" in message


def test_the_t1_tables_hold_nothing_after_t1(travelled: Path) -> None:
    db = travelled / "snapshots" / "t1.duckdb"
    rebuilt = set(_result(travelled)["rebuilt"])
    tables = _tables(db)
    assert {"kpi_daily", "customer_profile", "customer_segments", "customer_clusters"} <= rebuilt & set(tables)
    after = []
    with duckdb.connect(str(db), read_only=True) as con:
        # staging (stg_*) mirrors the raw loads, as-of-free by design; every model built on it cuts at as_of
        for table in sorted(t for t in rebuilt & set(tables) if not t.startswith("stg_")):
            for column, data_type in tables[table]:
                if column in SCHEDULED_DATES:
                    continue
                if data_type == "DATE":
                    bound = f"date '{T1.date().isoformat()}'"
                elif data_type.startswith("TIMESTAMP"):
                    bound = f"timestamptz '{T1.isoformat()}'"
                else:
                    continue
                late = con.execute(f"select count(*) from {table} where {column} > {bound}").fetchone()[0]
                if late:
                    after.append(f"{table}.{column}: {late} rows")
        assert con.execute("select max(date_day) from kpi_daily").fetchone()[0] == T1.date()
    assert not after, after


def test_the_same_as_of_twice_gives_identical_tables(travelled: Path) -> None:
    first, second = travelled / "snapshots" / "t2_first.duckdb", travelled / "snapshots" / "t2_second.duckdb"
    tables = _tables(first)
    assert set(tables) == set(_tables(second))
    assert len(tables) > 60
    assert _differences(first, second, sorted(set(tables) - RUN_LOGS)) == {}


def test_incremental_equals_full_refresh_after_late_changes(travelled: Path, dbt_manifest: Path) -> None:
    manifest = json.loads(dbt_manifest.read_text())
    models = {n["alias"] or n["name"] for n in manifest["nodes"].values()
              if n["resource_type"] in ("model", "seed") and n["package_name"] == "crmflow"
              and n["config"].get("materialized") != "ephemeral" and "cumulative_state" not in n["tags"]}
    incremental = travelled / "snapshots" / "t3_incremental.duckdb"
    full = travelled / "snapshots" / "t3_full_refresh.duckdb"
    present = sorted(models & set(_tables(incremental)))
    assert {"kpi_daily", "int_customer__event_days", "stg_shop__order_items"} <= set(present)
    assert _differences(incremental, full, present) == {}
    late = _result(travelled)["late"]
    with duckdb.connect(str(incremental), read_only=True) as con:
        assert con.execute("select status from stg_shop__orders where order_id = ?",
                           [late["refunded_order"]]).fetchone()[0] == "refunded"
        day = datetime.fromisoformat(late["ordered_at"]).astimezone(UTC).date()
        kpi = con.execute("select revenue from kpi_daily where date_day = ?", [day]).fetchone()[0]
        staged = con.execute("select coalesce(sum(amount), 0) from stg_shop__orders where status = 'paid' "
                             "and amount > 0 and cast(ordered_at at time zone 'UTC' as date) = ?", [day]).fetchone()[0]
        assert kpi == staged
        # the back-dated device's page view, 40 days back, now counts for its owner
        day = (T2 - timedelta(days=40)).date()
        events_then = "select coalesce(sum(event_count), 0) from int_customer__event_days " \
                      "where user_id = ? and activity_date = ?"
        after = con.execute(events_then, [late["late_user"], day]).fetchone()[0]
    with duckdb.connect(str(travelled / "snapshots" / "t2_second.duckdb"), read_only=True) as con:
        before = con.execute(events_then, [late["late_user"], day]).fetchone()[0]
    assert after == before + 1
