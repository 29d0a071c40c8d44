"""A small multi-day simulation for tests/test_integration_*.py.

One generated world (GeneratorConfig with a fixed world end) is delivered day by day: the history up
to HISTORY_END (`emit_until`), then one per-day file set per simulated day (`emit_since` =
`emit_until`), each followed by `run_pipeline(as_of)` (what `crmflow run --as-of` does). A few
crafted customers (ids "it...") are added as extra landing files so that every shipped journey has
someone who must enter it on a known day. After the last day the hourly journey tick runs twice:
at the same as-of (a rerun must plan nothing) and 12 hours later (quiet-hour deferrals go out).

Run as a script in a subprocess with the CRMFLOW_* environment set (the Definitions object reads the
settings at import): `python tests/helpers_integration.py <root>`. Snapshots of the warehouse after
each step land in <root>/snapshots/<name>.duckdb.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from crmflow.generator.order_rows import COLUMNS as ORDER_COLUMNS
from crmflow.generator.registrations import COLUMNS as REG_COLUMNS

REPO = Path(__file__).resolve().parent.parent
USERS = 600
SEED = 23
WORLD_DAYS = 200
HISTORY_END = date(2026, 11, 15)
SIM_DAYS = [date(2026, 11, 16), date(2026, 11, 17)]  # delivered one at a time after the history
WORLD_END = SIM_DAYS[-1]
TIMEZONE = "Asia/Shanghai"
# Run k sees the data up to day k (06:00 UTC the next morning, 14:00 in Shanghai).
AS_OFS = [datetime(2026, 11, 16, 6, tzinfo=UTC), datetime(2026, 11, 17, 6, tzinfo=UTC),
          datetime(2026, 11, 18, 6, tzinfo=UTC)]
LATER_TICK = AS_OFS[-1] + timedelta(hours=12)  # 10:00 in Los Angeles, 13:00 in New York, 18:00 in London
SNAPSHOTS = ["day0", "day1", "day2", "rerun", "later"]


# Crafted customers and the journey each must enter, with the as-of index of the run that enrols them.
EXPECTED_ENTRIES = {
    "welcome_series": ("itwelcome01", 1),  # registers on day 1, no order: lifecycle/prospect
    "abandoned_cart": ("itcart01", 1),  # checkout_started on day 1, no order within 2 h
    "vip_upgrade": ("itvip01", 1),  # value tier low -> high with a big order on day 1
    "churn_risk_rescue": ("itrescue01", 1),  # high value, last activity 89 days before run 0: silent at run 1
    "b2b_renewal": ("itb2b01", 1),  # contract ends 2026-12-17: reminder 2026-11-17 10:00 Shanghai
    "birthday_coupon": ("itbday01", 2),  # birthday 18 November, 09:00 Shanghai = 01:00 UTC
}


def _registration(user_id: str, registered_at: str, **fields: str) -> dict[str, str]:
    row = dict.fromkeys(REG_COLUMNS, "")
    row.update(user_id=user_id, registered_at=registered_at, updated_at=registered_at,
               email=f"{user_id}@example.com", first_name="Itest", country="CN", city="Shanghai",
               locale="en-US", timezone=TIMEZONE, acquisition_channel="organic", customer_type="individual",
               email_opt_in="true", sms_opt_in="true", push_opt_in="true", push_token=f"tok-{user_id}")
    row.update(fields)
    return row


def _order(order_id: str, user_id: str, at: str, amount: float, category: str = "electronics") -> dict[str, str]:
    items = [{"sku": "SKU-0001", "category": category, "quantity": 1, "unit_price": amount}]
    return {"order_id": order_id, "user_id": user_id, "ordered_at": at, "updated_at": at, "status": "paid",
            "amount": f"{amount:.2f}", "currency": "USD", "items": json.dumps(items), "channel": "web"}


def crafted_rows(day: date | None) -> tuple[list[dict], list[dict], list[dict]]:
    """(registrations, orders, events) of the crafted customers delivered with `day` (None: history)."""
    if day is None:
        regs = [
            _registration("itvip01", "2026-10-01T02:00:00Z"),
            _registration("itrescue01", "2026-05-01T02:00:00Z", locale="zh-CN"),
            _registration("itbday01", "2026-03-01T02:00:00Z", birth_date="1990-11-18"),
            _registration("itb2b01", "2026-01-10T02:00:00Z", customer_type="business", company_name="Itest Ltd",
                          industry="retail", employees="40", contract_end_date="2026-12-17"),
            _registration("itcart01", "2026-09-01T02:00:00Z"),
        ]
        orders = [
            _order("itest-o1", "itvip01", "2026-10-02T03:00:00Z", 12.0),
            _order("itest-o2", "itrescue01", "2026-06-01T03:00:00Z", 9000.0),
            # 12:00 in Shanghai on 19 August: 89 local days before 16 November, 90 before the 17th.
            _order("itest-o3", "itrescue01", "2026-08-19T04:00:00Z", 9000.0),
            _order("itest-o4", "itcart01", "2026-09-02T03:00:00Z", 40.0),
            _order("itest-o5", "itb2b01", "2026-02-01T03:00:00Z", 3000.0),
        ]
        return regs, orders, []
    if day == SIM_DAYS[0]:
        regs = [_registration("itwelcome01", "2026-11-16T02:00:00Z")]
        orders = [_order("itest-o6", "itvip01", "2026-11-16T03:00:00Z", 6000.0)]
        events = [{"message_id": "itest-m1", "type": "track", "event": "checkout_started", "user_id": "itcart01",
                   "anonymous_id": "anon-itcart01", "timestamp": "2026-11-16T01:00:00Z",
                   "properties": {"cart_value": 80.0, "currency": "USD"},
                   "context": {"locale": "en-US", "timezone": TIMEZONE, "device": {"type": "mobile"}}}]
        return regs, orders, events
    return [], [], []


def write_crafted(landing: Path, day: date | None) -> None:
    regs, orders, events = crafted_rows(day)
    label = "history" if day is None else day.isoformat()
    for kind, prefix, columns, rows in (("registrations", "registrations", REG_COLUMNS, regs),
                                        ("orders", "orders", ORDER_COLUMNS, orders)):
        if rows:
            path = landing / kind / f"{prefix}-itest-{label}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
    if events:
        path = landing / "events" / f"events-itest-{label}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events))


def environment(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CRMFLOW_WAREHOUSE": str(root / "warehouse.duckdb"),
        "CRMFLOW_LANDING_DIR": str(root / "landing"),
        "CRMFLOW_OUTBOX_DIR": str(root / "outbox"),
        "CRMFLOW_EXPORT_DIR": str(root / "exports"),
        "CRMFLOW_TIMEZONE": TIMEZONE,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def simulate(root: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run this module as a script in a subprocess; raises with the output tail when it fails."""
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(root)], env=environment(root),
                            cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"simulation failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def snapshot(root: Path, name: str) -> Path:
    return root / "snapshots" / f"{name}.duckdb"


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("set TimeZone='UTC'")
        return con.execute(sql, params or []).fetchall()


def _main(root: Path) -> None:
    sys.path.insert(0, str(REPO))
    from crmflow.generator import GeneratorConfig, generate_landing
    from orchestration.cli import run_pipeline

    landing = root / "landing"
    (root / "snapshots").mkdir(parents=True, exist_ok=True)

    def world(**emit: date) -> GeneratorConfig:
        return GeneratorConfig(users=USERS, days=WORLD_DAYS, end=WORLD_END, seed=SEED, **emit)

    def keep(name: str) -> None:
        shutil.copyfile(root / "warehouse.duckdb", snapshot(root, name))

    generate_landing(world(emit_until=HISTORY_END), landing)
    write_crafted(landing, None)
    for index, as_of in enumerate(AS_OFS):
        if index:
            day = SIM_DAYS[index - 1]
            generate_landing(world(emit_since=day, emit_until=day), landing)
            write_crafted(landing, day)
        if not run_pipeline(as_of):
            raise SystemExit(f"run as of {as_of.isoformat()} failed")
        keep(f"day{index}")

    from orchestration.asof import as_of_tags
    from orchestration.definitions import defs

    tick = defs.resolve_job_def("journey_tick")
    for name, as_of in (("rerun", AS_OFS[-1]), ("later", LATER_TICK)):
        if not tick.execute_in_process(tags=as_of_tags(as_of), raise_on_error=False).success:
            raise SystemExit(f"journey tick as of {as_of.isoformat()} failed")
        keep(name)


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
