"""int_customer__event_days is incremental: a build, then one more day of events (new days, a late
event for an old day, an earlier link that moves an anonymous device to another user, a first link
for a never-identified device, an event loaded earlier but after the old as-of) and an incremental
build give exactly the rows of a --full-refresh build of the same data. A back-dated load (at or
before the watermark) falls back to recomputing every pair and still matches.
stg_shop__order_items likewise: a new order, an order refunded, one whose items changed, one
whose new version has no items and a back-dated new version give the rows of a full refresh; an order deleted from raw_orders
(the table rewritten) falls back to a rebuild of every order and still matches.

The dbt invocations run in one subprocess (this file run as a script: `python <this file> <dir>`)
with one parsed manifest: six dbt CLI processes parsing the project each took ~45 s."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from helpers_dbt_core import AS_OF, TIMEZONE, query, seed_raw

SELECTION = ["--select", "+int_customer__event_days", "+stg_shop__order_items", "--indirect-selection", "cautious"]
NEXT_AS_OF = "2026-06-06T00:00:00+00:00"
NEXT_LOADED_AT = "2026-06-05T23:00:00+00:00"
EVENT_DAYS = "select * from int_customer__event_days order by user_id, activity_date"
ORDER_ITEMS = "select * from stg_shop__order_items order by order_id, line_number"

# New versions of orders (order_id, user_id, ordered_at, updated_at, status, amount, items):
ITEM = {"sku": "bk9", "category": "books", "quantity": 1, "unit_price": 9.5}
NEXT_DAY_ORDERS = [
    ("o1", "u1", "2026-01-10T12:00:00Z", "2026-06-05T08:00:00Z", "refunded", 100.0,
     '[{"sku": "bk1", "category": "books", "quantity": 2, "unit_price": 50.0}]'),  # refund
    ("o3", "u1", "2026-03-01T10:00:00Z", "2026-06-05T08:00:00Z", "paid", 30.0, None),  # items gone
    ("o14", "b1", "2026-01-05T10:00:00Z", "2026-06-05T08:00:00Z", "paid", 20000.0,
     '[{"sku": "srv", "category": "servers", "qty": 2, "price": 10000.0}]'),  # one line less
    ("o18", "u3", "2026-06-05T10:00:00Z", "2026-06-05T10:00:00Z", "paid", 19.0, json.dumps([ITEM, ITEM])),  # new
]
# Back-dated new version (loaded "at" the first build's load time): found by its changed hash.
BACK_DATED_ORDERS = [("o2", "u1", "2026-02-28T23:30:00Z", "2026-06-04T00:00:00Z", "refunded", 50.0,
                      '[{"sku": "tv1", "category": "electronics", "quantity": 1, "unit_price": 50.0}]')]

# message_id, type, event, user_id, anonymous_id, event_at, context
NEXT_DAY_EVENTS = [
    ("n1", "track", "Product Viewed", "u1", None, "2026-06-05T08:00:00Z", {"device": {"type": "iOS"}}),
    ("n2", "track", "cart_abandoned", "u2", "a2", "2026-06-05T09:00:00Z", {"device": {"type": "desktop"}}),
    ("n3", "page", None, None, "a2", "2026-06-05T08:30:00Z", None),  # stitched through n2
    ("n4", "track", "Product Viewed", "u3", None, "2026-03-03T10:00:00Z", None),  # late, old day
    # Earlier link for the shared device a9: u5 now owns it and its anonymous e8 (was u4's).
    ("n5", "identify", None, "u5", "a9", "2026-01-09T10:00:00Z", None),
    ("n6", "identify", None, "u6", "a404", "2026-06-05T12:00:00Z", None),  # a404's e9 goes to u6
    ("n7", "page", None, None, "a777", "2026-06-05T12:00:00Z", None),  # never identified
    ("n8", "page", None, "u1", None, "2026-06-07T12:00:00Z", None),  # after the new as-of
]
# Loaded "at" the first build's load time, after it: a loaded_at filter cannot see it.
BACK_DATED = [("b1", "page", None, "u1", None, "2026-02-02T10:00:00Z", None)]
BACK_DATED_LOADED_AT = "2026-06-01T00:00:00+00:00"


def _load(db: Path, events: list[tuple], loaded_at: str) -> None:
    con = duckdb.connect(str(db))
    con.executemany(
        """insert into raw_events (message_id, type, event, user_id, anonymous_id, event_at,
            properties, context, _source_file, _source_line, _loaded_at)
           values (?, ?, ?, ?, ?, ?::timestamptz, '{}', ?::json, 'next.jsonl', ?, ?::timestamptz)""",
        [(mid, typ, ev, uid, anon, at, json.dumps(ctx or {}), line, loaded_at)
         for line, (mid, typ, ev, uid, anon, at, ctx) in enumerate(events, 1)],
    )
    con.execute("checkpoint")
    con.close()


def _load_orders(db: Path, orders: list[tuple], loaded_at: str) -> None:
    """Last write wins by order_id, as the ingest's merge does: the new version replaces the row."""
    con = duckdb.connect(str(db))
    con.executemany("delete from raw_orders where order_id = ?", [(order[0],) for order in orders])
    con.executemany(
        """insert into raw_orders (order_id, user_id, ordered_at, updated_at, status, amount, currency,
            items, channel, _source_file, _source_line, _loaded_at)
           values (?, ?, ?::timestamptz, ?::timestamptz, ?, ?, 'eur', ?, 'web', 'next.csv', ?, ?::timestamptz)""",
        [(*order, line, loaded_at) for line, order in enumerate(orders, 1)],
    )
    con.execute("checkpoint")
    con.close()


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    shutil.copy(src / "warehouse.duckdb", dst / "warehouse.duckdb")
    return dst


def run_scenario(work: Path) -> None:
    """Every database is <dir>/warehouse.duckdb: the manifest names the catalog `warehouse`."""
    from dbt.cli.main import dbtRunner

    from crmflow.settings import REPO_ROOT

    common = ["--profiles-dir", str(REPO_ROOT), "--project-dir", str(REPO_ROOT), "--quiet",
              "--target-path", str(work / "target"), "--log-path", str(work / "logs")]

    def dbt(directory: Path, as_of: str, *extra: str) -> None:
        os.environ["CRMFLOW_WAREHOUSE"] = str(directory / "warehouse.duckdb")
        dbt_vars = json.dumps({"as_of": as_of, "business_timezone": TIMEZONE, "reporting_currency": "EUR"})
        result = dbtRunner(manifest=manifest).invoke(["build", *SELECTION, *common, "--vars", dbt_vars, *extra])
        if not result.success:
            raise SystemExit(f"dbt build failed in {directory}: {result.exception}")
        for model in ("int_customer__event_days", "stg_shop__order_items"):  # the SQL this build ran
            shutil.copy(next((work / "target" / "compiled").rglob(f"{model}.sql")), directory / f"{model}.sql")

    inc = work / "incremental"
    inc.mkdir()
    seed_raw(inc / "warehouse.duckdb")
    os.environ.update({"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"})
    parsed = dbtRunner().invoke(["parse", *common, "--vars", json.dumps({"as_of": AS_OF})])
    manifest = parsed.result
    dbt(inc, AS_OF)
    _load(inc / "warehouse.duckdb", NEXT_DAY_EVENTS, NEXT_LOADED_AT)
    _load_orders(inc / "warehouse.duckdb", NEXT_DAY_ORDERS, NEXT_LOADED_AT)
    _load_orders(inc / "warehouse.duckdb", BACK_DATED_ORDERS, BACK_DATED_LOADED_AT)
    full = _copy(inc, work / "full")
    back = _copy(inc, work / "back")
    _load(back / "warehouse.duckdb", BACK_DATED, BACK_DATED_LOADED_AT)
    con = duckdb.connect(str(back / "warehouse.duckdb"))
    con.execute("delete from raw_orders where order_id = 'o7'")  # raw_orders rewritten without o7
    con.close()
    back_full = _copy(back, work / "back_full")
    dbt(inc, NEXT_AS_OF)
    dbt(full, NEXT_AS_OF, "--full-refresh")
    dbt(back, NEXT_AS_OF)
    dbt(back_full, NEXT_AS_OF, "--full-refresh")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("dbt_incremental")
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, __file__, str(work)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return work


def _rows(work: Path, name: str) -> list[tuple]:
    return query(work / name / "warehouse.duckdb", EVENT_DAYS)


def test_incremental_day_equals_full_refresh(work: Path) -> None:
    rows = _rows(work, "incremental")
    assert "_loaded_at >" in (work / "incremental" / "int_customer__event_days.sql").read_text()  # the incremental path
    assert rows == _rows(work, "full")
    days = {(r[0], str(r[1])): r[2] for r in rows}
    assert days[("u5", "2026-01-13")] == 1 and ("u4", "2026-01-13") not in days  # e8 moved to u5
    assert days[("u6", "2026-01-13")] == 1  # e9, once a404 was linked
    assert days[("u1", "2026-06-05")] == 2  # e2 (loaded before, now up to as-of) and n1
    assert days[("u2", "2026-06-05")] == 2 and days[("u3", "2026-03-03")] == 1


def test_back_dated_load_rebuilds_every_pair(work: Path) -> None:
    rows = _rows(work, "back")
    sql = (work / "back" / "int_customer__event_days.sql").read_text()
    assert "_loaded_at >" not in sql and "select user_id, activity_date from" in sql  # every pair
    assert ("u1", "2026-02-02") in {(r[0], str(r[1])) for r in rows}
    assert rows == _rows(work, "back_full")



def test_order_items_incremental_equals_full_refresh(work: Path) -> None:
    rows = query(work / "incremental" / "warehouse.duckdb", ORDER_ITEMS)
    assert "anti join" in (work / "incremental" / "stg_shop__order_items.sql").read_text()  # changed orders only
    assert rows == query(work / "full" / "warehouse.duckdb", ORDER_ITEMS)
    lines = {(r[0], r[4]): r for r in rows}
    assert lines[("o1", 1)][3] == "refunded" and lines[("o2", 1)][3] == "refunded"
    assert ("o3", 1) not in lines and ("o14", 2) not in lines and ("o14", 1) in lines
    assert lines[("o18", 2)][5] == "bk9" and ("o7", 1) in lines
    assert all(r[4] is not None for r in rows)  # no tombstone left


def test_order_items_rewritten_raw_orders_rebuilds(work: Path) -> None:
    rows = query(work / "back" / "warehouse.duckdb", ORDER_ITEMS)
    sql = (work / "back" / "stg_shop__order_items.sql").read_text()
    assert "anti join" not in sql and "union\n" in sql  # every order, and the table's, again
    assert rows == query(work / "back_full" / "warehouse.duckdb", ORDER_ITEMS)
    lines = {(r[0], r[4]): r for r in rows}
    assert ("o7", 1) not in lines


if __name__ == "__main__":
    run_scenario(Path(sys.argv[1]))
