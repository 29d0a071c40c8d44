"""Time travel over one small generated world (issue 16 "Done when"), for tests/test_time_travel.py.

Run as a script in a subprocess with the CRMFLOW_* environment set (the Definitions object reads the
settings at import): `python tests/helpers_time_travel.py <root> <T2> <T1> <T3>`. One process, one
parsed manifest, the crmflow_full job executed in process (what `crmflow run` runs):

1. full run as of T2                                   -> snapshots/t2_first.duckdb
2. a full run as of T1 < T2 is refused (cumulative state); the message goes to result.json
3. the analytics rebuild (job crmflow_analytics, orchestration/rebuild.py) as of T1 -> snapshots/t1.duckdb
4. full run as of T2 again                             -> snapshots/t2_second.duckdb
5. late changes land: a refund of an old order and back-dated events (one linking a new device of
   an existing customer), then a full run as of T3      -> snapshots/t3_incremental.duckdb
   and `dbt build --full-refresh` of the same data as of T3 on a copy -> snapshots/t3_full_refresh.duckdb
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parent.parent
DBT = str(Path(sys.executable).parent / "dbt")


def snapshot(root: Path, name: str) -> Path:
    path = root / "snapshots" / f"{name}.duckdb"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(os.environ["CRMFLOW_WAREHOUSE"], path)
    return path


def run_job(defs, as_of: datetime, job: str = "crmflow_full") -> None:
    from orchestration.asof import as_of_tags

    result = defs.resolve_job_def(job).execute_in_process(tags=as_of_tags(as_of), raise_on_error=False)
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    if not result.success:
        raise SystemExit(f"run as of {as_of.isoformat()} failed: {failed}")


def late_changes(root: Path, warehouse: Path, t2: datetime) -> dict[str, str]:
    """Landing files with a refund of the oldest paid order and back-dated events."""
    from crmflow.generator.order_rows import COLUMNS as ORDER_COLUMNS

    with duckdb.connect(str(warehouse), read_only=True) as con:
        order = con.execute(
            "select order_id, user_id, ordered_at, amount, currency, items, channel from raw_orders "
            "where status = 'paid' and amount > 0 order by ordered_at, order_id limit 1").fetchone()
        user = con.execute("select user_id from raw_registrations order by user_id limit 1").fetchone()[0]
    order_id, user_id, ordered_at, amount, currency, items, channel = order
    refund = dict.fromkeys(ORDER_COLUMNS, "")
    refund.update(order_id=order_id, user_id=user_id, ordered_at=ordered_at.isoformat(),
                  updated_at=(t2 + timedelta(hours=6)).isoformat(), status="refunded", amount=f"{amount:.2f}",
                  currency=currency, items=items or "", channel=channel or "")
    path = root / "landing" / "orders" / "orders-late-refund.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=ORDER_COLUMNS)
        writer.writeheader()
        writer.writerow(refund)
    old = t2 - timedelta(days=40)
    events = [
        # a page view of a device never seen before, 40 days back, then that device identified
        {"message_id": "late-m1", "type": "page", "anonymous_id": "late-device", "timestamp": old.isoformat(),
         "properties": {}, "context": {"device": {"type": "mobile"}}},
        {"message_id": "late-m2", "type": "identify", "user_id": user, "anonymous_id": "late-device",
         "timestamp": (old + timedelta(days=1)).isoformat(), "properties": {}, "context": {}},
        {"message_id": "late-m3", "type": "track", "event": "Product Viewed", "user_id": user,
         "timestamp": (old - timedelta(days=20)).isoformat(), "properties": {}, "context": {}},
    ]
    (root / "landing" / "events" / "events-late.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return {"refunded_order": order_id, "ordered_at": ordered_at.isoformat(), "late_user": user}


def full_refresh(root: Path, source: Path, as_of: datetime) -> Path:
    """`dbt build --full-refresh` of every model on a copy of `source` (the run's vars and target)."""
    from crmflow.settings import load_settings
    from crmflow.warehouse import parse_target
    from orchestration.dbt import dbt_vars
    from orchestration.dbt_env import dbt_target_env

    target = root / "snapshots" / "t3_full_refresh.duckdb"
    shutil.copy(source, target)
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(target), **dbt_target_env(parse_target(str(target)))}
    work = root / "dbt_full_refresh"
    done = subprocess.run(
        [DBT, "build", "--full-refresh", "--vars", dbt_vars(as_of.isoformat(), load_settings().timezone),
         "--project-dir", str(REPO), "--profiles-dir", str(REPO), "--target-path", str(work / "target"),
         "--log-path", str(work / "logs")], env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("dbt --full-refresh failed:\n" + done.stdout[-4000:])
    return target


def main(root: Path, t2: datetime, t1: datetime, t3: datetime) -> None:
    from crmflow.cumulative_state import refuse_going_back
    from crmflow.errors import CrmflowUserError
    from crmflow.warehouse import open_warehouse
    from orchestration.cli import migrate_warehouse, prepare_dbt_manifest

    migrate_warehouse()
    prepare_dbt_manifest(force=True)
    from orchestration.definitions import defs
    from orchestration.rebuild import analytics_asset_keys

    result: dict[str, object] = {}
    run_job(defs, t2)
    snapshot(root, "t2_first")
    with open_warehouse() as wh:
        try:
            refuse_going_back(wh, t1)
            result["refused"] = None
        except CrmflowUserError as error:
            result["refused"] = str(error)
        refuse_going_back(wh, t2)  # the same as-of again is allowed
    result["rebuilt"] = [k.to_user_string() for k in analytics_asset_keys(defs)]
    run_job(defs, t1, "crmflow_analytics")
    snapshot(root, "t1")
    run_job(defs, t2)
    snapshot(root, "t2_second")
    result["late"] = late_changes(root, Path(os.environ["CRMFLOW_WAREHOUSE"]), t2)
    run_job(defs, t3)
    incremental = snapshot(root, "t3_incremental")
    full_refresh(root, incremental, t3)
    (root / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *(datetime.fromisoformat(a) for a in sys.argv[2:5]))
