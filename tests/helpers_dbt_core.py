"""Shared helpers for the dbt core tests: a tiny crafted raw dataset and a `dbt` runner that keeps
its target/log folders in the test's temp dir (so parallel runs never share dbt's target/)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from crmflow import warehouse
from crmflow.settings import REPO_ROOT

DBT = str(Path(sys.executable).parent / "dbt")
AS_OF = "2026-06-01T00:00:00+00:00"
TIMEZONE = "Europe/Berlin"
LOADED_AT = "2026-06-01T00:00:00+00:00"
# Only this area's models and their ancestors (other teams' marts are tested by their own tests);
# cautious: only tests whose parents are all selected.
CORE_SELECTION = [
    "--select", "+customer_lifecycle_history", "+customer_value_tier_history", "+customer_rfm",
    "--indirect-selection", "cautious",
]

# user_id, registered_at, customer_type, email, referred_by, company_name
REGISTRATIONS = [
    ("u1", "2025-01-01T09:00:00Z", "individual", "U1@Example.com ", None, None),
    ("u2", "2026-05-20T09:00:00Z", "individual", "u2@example.com", "b1", None),
    ("u3", "2026-02-01T09:00:00Z", "individual", "u3@example.com", "b1", None),
    ("u4", "2025-06-01T09:00:00Z", "individual", "u4@example.com", None, None),
    ("u5", "2025-06-01T09:00:00Z", "individual", "u5@example.com", None, None),
    ("u6", "2025-06-01T09:00:00Z", "individual", "u6@example.com", None, None),
    ("b1", "2024-01-01T09:00:00Z", "business", "buyer@acme.test", None, "Acme"),
    ("b2", "2026-05-01T09:00:00Z", "B2B", "buyer@tiny.test", None, "Tiny"),
    # Registered after the as-of: ignored by the marts.
    ("u8", "2026-06-03T09:00:00Z", "individual", "u8@example.com", "b1", None),
]


def _items(*lines: tuple[str, str, int, float]) -> str:
    return json.dumps(
        [{"sku": s, "category": c, "quantity": q, "unit_price": p} for s, c, q, p in lines]
    )


# order_id, user_id, ordered_at, status, amount, items
ORDERS = [
    ("o1", "u1", "2026-01-10T12:00:00Z", "paid", 100.00, _items(("bk1", "books", 2, 50.0))),
    # 23:30 UTC on Feb 28 is 00:30 on Mar 1 in Berlin: same purchase day as o3.
    ("o2", "u1", "2026-02-28T23:30:00Z", "paid", 50.00, _items(("tv1", "electronics", 1, 50.0))),
    ("o3", "u1", "2026-03-01T10:00:00Z", "PAID", 30.00, _items(("bk2", "books", 1, 30.0))),
    ("o4", "u1", "2026-04-01T10:00:00Z", "refunded", 999.00, _items(("tv2", "electronics", 1, 999.0))),
    ("o5", "u1", "2026-04-15T10:00:00Z", "paid", 0.00, _items(("smp", "samples", 1, 0.0))),
    ("o6", "u1", "2026-05-20T10:00:00Z", "paid", 20.00, _items(("bk3", "books", 1, 20.0))),
    ("o7", "u2", "2026-05-25T10:00:00Z", "paid", 40.00, _items(("pn1", "garden", 1, 40.0))),
    ("o8", "u2", "2026-06-02T10:00:00Z", "paid", 1000.00, None),  # after as-of: ignored
    ("o9", "u4", "2025-12-01T10:00:00Z", "paid", 60.00, None),
    ("o10", "u5", "2025-09-01T10:00:00Z", "paid", 10.00, None),
    ("o11", "u6", "2025-10-01T10:00:00Z", "paid", 70.00, None),
    ("o12", "u6", "2026-05-15T10:00:00Z", "paid", 90.00, None),
    ("o13", "u7", "2026-04-01T10:00:00Z", "paid", 25.00, None),  # order-only user
    (
        "o14", "b1", "2026-01-05T10:00:00Z", "paid", 30000.00,
        _items(("srv", "servers", 2, 10000.0), ("lic", "licences", 10, 1000.0)),
    ),
    ("o15", "b1", "2026-02-05T10:00:00Z", "refunded", 5000.00, None),
    ("o16", "b2", "2026-05-10T10:00:00Z", "paid", 500.00, None),
    ("o17", "b2", "2026-05-11T10:00:00Z", "overdue", 700.00, None),  # unpaid invoice: B2B penalty
]

# message_id, type, event, user_id, anonymous_id, event_at, context
EVENTS = [
    ("e1", "page", None, "u1", "a1", "2026-05-25T10:00:00Z", {"locale": "de-DE"}),
    ("e2", "track", "Product Viewed", "u1", None, "2026-06-05T10:00:00Z", None),  # after as-of
    ("e3", "page", None, None, "a3", "2026-02-02T10:00:00Z",
     {"campaign": {"source": "newsletter", "name": "feb"}, "device": {"type": "ios"}}),
    ("e4", "identify", None, "u3", "a3", "2026-02-03T10:00:00Z", None),
    ("e5", "track", "Product Viewed", "u4", None, "2026-01-15T10:00:00Z", None),
    # Shared device a9: linked to u4 first, then to u1; the first link wins.
    ("e6", "identify", None, "u4", "a9", "2026-01-10T10:00:00Z", None),
    ("e7", "identify", None, "u1", "a9", "2026-01-12T10:00:00Z", None),
    ("e8", "page", None, None, "a9", "2026-01-13T10:00:00Z", None),
    ("e9", "page", None, None, "a404", "2026-01-13T10:00:00Z", None),  # never identified
]


def seed_raw(path: Path) -> None:
    """Create the raw tables in a fresh warehouse and load the crafted rows."""
    with warehouse.connect(path) as con:
        warehouse.ensure_raw_tables(con)
        con.executemany(
            """insert into raw_registrations (user_id, registered_at, updated_at, email, first_name,
                customer_type, company_name, email_opt_in, sms_opt_in, push_opt_in, referred_by,
                _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, 'Test', ?, ?, true, false, false, ?, 'reg.csv', ?, ?)""",
            [
                (uid, reg, reg, email, ctype, company, ref, line, LOADED_AT)
                for line, (uid, reg, ctype, email, ref, company) in enumerate(REGISTRATIONS, 1)
            ],
        )
        con.executemany(
            """insert into raw_orders (order_id, user_id, ordered_at, updated_at, status, amount,
                currency, items, channel, _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, ?, ?, 'eur', ?, 'web', 'orders.csv', ?, ?)""",
            [
                (oid, uid, at, at, status, amount, items, line, LOADED_AT)
                for line, (oid, uid, at, status, amount, items) in enumerate(ORDERS, 1)
            ],
        )
        con.executemany(
            """insert into raw_events (message_id, type, event, user_id, anonymous_id, event_at,
                properties, context, _source_file, _source_line, _loaded_at)
               values (?, ?, ?, ?, ?, ?, '{}', ?, 'events.jsonl', ?, ?)""",
            [
                (mid, typ, ev, uid, anon, at, json.dumps(ctx or {}), line, LOADED_AT)
                for line, (mid, typ, ev, uid, anon, at, ctx) in enumerate(EVENTS, 1)
            ],
        )


def run_dbt(
    args: list[str], warehouse_path: Path, work_dir: Path, as_of: str = AS_OF,
    extra_vars: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run dbt against `warehouse_path`; returns the finished process (check returncode)."""
    env = {
        **os.environ,
        "CRMFLOW_WAREHOUSE": str(warehouse_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    # The crafted shop sells in EUR only: report in EUR so amounts stay as written (fx factor 1).
    dbt_vars = json.dumps({
        "as_of": as_of, "business_timezone": TIMEZONE, "reporting_currency": "EUR", **(extra_vars or {}),
    })
    command = [
        DBT, *args,
        "--profiles-dir", str(REPO_ROOT), "--project-dir", str(REPO_ROOT),
        "--target-path", str(work_dir / "target"), "--log-path", str(work_dir / "logs"),
        "--vars", dbt_vars,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def query(path: Path, sql: str) -> list[tuple]:
    with warehouse.connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()
