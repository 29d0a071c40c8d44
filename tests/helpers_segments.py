"""Crafted raw data and a dbt runner for the segments / tags / KPI tests (tiny, hand-checkable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb

from crmflow.settings import DBT_PROJECT_DIR
from crmflow.tags import compile_rules, load_tags_config, write_tag_rules
from crmflow.warehouse import apply_migrations, connect, ensure_raw_tables, open_warehouse

DBT = str(Path(sys.executable).parent / "dbt")
# The models under test; their upstream (other areas' models) is built first without its tests,
# so another area's work in progress cannot fail these tests.
OWN = [
    "path:dbt_project/models/intermediate/segments",
    "path:dbt_project/models/marts/segments",
    "path:dbt_project/models/marts/kpi",
    "segment_definitions",
    "path:dbt_project/tests/segments",
    "path:dbt_project/tests/kpi",
]
UPSTREAM = ["+path:dbt_project/models/marts/segments", "+path:dbt_project/models/marts/kpi"]

_LOADED = "2026-01-01 00:00:00+00"

# user_id, registered_at, acquisition_channel, customer_type, email, phone, email_opt_in, sms_opt_in,
# birth_date
REGISTRATIONS = [
    ("u1", "2026-01-05 10:00:00+00", "ads", "individual", "u1@example.com", None, True, False, "1990-03-20"),
    ("u2", "2026-01-20 10:00:00+00", "organic", "individual", None, "+4915100000002", False, True, "1985-07-01"),
    ("u3", "2026-02-01 10:00:00+00", "sales", "business", "u3@example.com", None, False, False, None),
    ("u4", "2026-02-28 23:30:00+00", "ads", "individual", None, None, False, False, None),
]
# order_id, user_id, ordered_at, status, amount, line totals (one item per entry)
ORDERS = [
    ("o1", "u1", "2026-01-10 09:00:00+00", "paid", 600, [600]),
    ("o2", "u1", "2026-02-12 09:00:00+00", "paid", 500, [400, 200]),  # discounted
    ("o3", "u1", "2026-03-05 09:00:00+00", "paid", 100, [100]),
    ("o4", "u2", "2026-01-25 09:00:00+00", "paid", 50, [80]),  # discounted
    ("o5", "u2", "2026-02-03 09:00:00+00", "paid", 40, [50]),  # discounted
    ("o6", "u4", "2026-03-01 09:00:00+00", "cancelled", 70, [70]),
    ("o7", "u5", "2026-03-09 09:00:00+00", "paid", 30, [30]),  # order-only user
    ("o8", "u3", "2026-04-01 09:00:00+00", "paid", 2000, [2000]),  # after the first as-of
]
# message_id, user_id, anonymous_id, event name, event_at, device type
EVENTS = [
    ("e1", "u1", None, "page_viewed", "2026-03-01 08:00:00+00", "mobile"),
    ("e2", None, "a1", "page_viewed", "2026-03-02 08:00:00+00", "ios"),  # u1 through identify e3
    ("e3", "u1", "a1", None, "2026-03-02 08:05:00+00", None),  # identify: no device
    ("e4", "u2", None, "page_viewed", "2026-03-01 08:00:00+00", "desktop"),
    ("e5", "u2", None, "cart_abandoned", "2026-03-08 20:00:00+00", "mobile"),
    ("e6", "u1", None, "cart_abandoned", "2026-03-04 20:00:00+00", "mobile"),  # ordered after (o3)
    ("e7", None, "anon-never", "page_viewed", "2026-03-01 09:00:00+00", "mobile"),
]

AS_OF_1 = "2026-03-10T12:00:00+00:00"
AS_OF_2 = "2026-04-15T12:00:00+00:00"


def _values(con: duckdb.DuckDBPyConnection, sql: str, rows: list[tuple]) -> None:
    con.executemany(sql, rows)


def seed_raw(path: Path, tags_yaml: Path) -> None:
    """Create the project's tables in a fresh warehouse (the migrations: raw tables, and the Python
    outputs dbt reads as sources, empty) and load the crafted rows and the tag rules."""
    with open_warehouse(path) as wh:
        apply_migrations(wh)
    with connect(path) as con:
        ensure_raw_tables(con)
        _values(
            con,
            """insert into raw_registrations (user_id, registered_at, updated_at, acquisition_channel,
                   customer_type, email, phone, email_opt_in, sms_opt_in, push_opt_in, birth_date,
                   _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?, 'test', 1, ?)""",
            [(u, r, r, ch, ct, em, ph, eo, so, bd, _LOADED) for u, r, ch, ct, em, ph, eo, so, bd in REGISTRATIONS],
        )
        _values(
            con,
            """insert into raw_orders (order_id, user_id, ordered_at, updated_at, status, amount, currency,
                   items, channel, _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, ?, ?, 'EUR', ?, 'web', 'test', 1, ?)""",
            [
                (o, u, t, t, s, a, json.dumps([{"sku": f"{o}-{i}", "category": "shoes", "quantity": 1,
                                                 "unit_price": line} for i, line in enumerate(lines)]), _LOADED)
                for o, u, t, s, a, lines in ORDERS
            ],
        )
        _values(
            con,
            """insert into raw_events (message_id, type, event, user_id, anonymous_id, event_at, context,
                   _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, ?, ?, ?, 'test', 1, ?)""",
            [
                (m, "identify" if name is None else "track", name, u, a, t,
                 json.dumps({"device": {"type": d}} if d else {}), _LOADED)
                for m, u, a, name, t, d in EVENTS
            ],
        )
        write_tag_rules(con, compile_rules(load_tags_config(tags_yaml)), datetime.fromisoformat(AS_OF_1))


def run_dbt(warehouse: Path, target: Path, as_of: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One dbt invocation; without args: build the upstream (models and seeds only), then ours with tests."""
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DO_NOT_TRACK": "1"}
    base = [
        DBT, "build", "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(target), "--log-path", str(target / "logs"),
        # The crafted shop sells in EUR only: report in EUR so amounts stay as written (fx factor 1).
        "--vars", json.dumps({"as_of": as_of, "business_timezone": "UTC", "reporting_currency": "EUR"}),
    ]
    steps = [list(args)] if args else [
        ["--select", *UPSTREAM, "--exclude", *OWN, "--resource-type", "model", "--resource-type", "seed"],
        ["--select", *OWN],
    ]
    result: subprocess.CompletedProcess[str] | None = None
    for step in steps:
        result = subprocess.run(base + step, env=env, capture_output=True, text=True, timeout=300,
                                cwd=DBT_PROJECT_DIR)
        if result.returncode != 0:
            return result
    assert result is not None
    return result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()
