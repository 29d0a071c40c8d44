"""dbt marts banner_ctr and operator_efficiency on crafted upstream tables (known answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers_banners_tasks import AS_OF, insert_rows

from crmflow.settings import DBT_PROJECT_DIR
from crmflow.tasks.outcomes import OUTCOMES_DDL
from crmflow.tasks.schema import ensure_task_tables
from crmflow.warehouse import connect

pytestmark = pytest.mark.slow
DBT = str(Path(sys.executable).parent / "dbt")
DAY = timedelta(days=1)


def dbt_build(warehouse: Path, target: Path, *select: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DO_NOT_TRACK": "1"}
    return subprocess.run(
        [DBT, "build", "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(target), "--log-path", str(target / "logs"),
         "--vars", json.dumps({"as_of": AS_OF.isoformat(), "business_timezone": "UTC"}), "--select", *select],
        env=env, capture_output=True, text=True, timeout=300, cwd=DBT_PROJECT_DIR)


def seed(warehouse: Path) -> None:
    with connect(warehouse) as con:
        con.execute("create table events_stitched (message_id varchar, user_id varchar, anonymous_id varchar, "
                    "event_type varchar, event_name varchar, event_at timestamptz, properties json, context json)")
        events = []
        for n, (user, anon, name, creative) in enumerate([
            ("u1", None, "banner_viewed", "hero_a"), ("u1", None, "banner_viewed", "hero_a"),
            ("u1", None, "banner_clicked", "hero_a"), ("u2", None, "banner_viewed", "hero_a"),
            (None, "anon1", "banner_viewed", "hero_a"), ("u2", None, "banner_viewed", "hero_b"),
        ]):
            events.append({"message_id": f"m{n}", "user_id": user, "anonymous_id": anon, "event_type": "track",
                           "event_name": name, "event_at": AS_OF - DAY,
                           "properties": json.dumps({"slot": "home_hero", "creative_id": creative})})
        events.append({"message_id": "late", "user_id": "u1", "event_type": "track", "event_name": "banner_clicked",
                       "event_at": AS_OF + DAY, "properties": json.dumps({"slot": "home_hero", "creative_id": "hero_a"})})
        insert_rows(con, "events_stitched", events)
        con.execute("create table customer_segments (user_id varchar, segment_family varchar, segment varchar, "
                    "as_of timestamptz)")
        insert_rows(con, "customer_segments", [
            {"user_id": "u1", "segment_family": "rfm", "segment": "champions", "as_of": AS_OF},
            {"user_id": "u2", "segment_family": "rfm", "segment": "at_risk", "as_of": AS_OF}])
        con.execute("create table stg_shop__orders (order_id varchar, user_id varchar, ordered_at timestamptz, "
                    "updated_at timestamptz, status varchar, amount decimal(18,2), currency varchar, "
                    "channel varchar, items json)")
        ensure_task_tables(con)
        con.execute(OUTCOMES_DDL)
        created = AS_OF - 20 * DAY
        tasks = [  # task, user, operator, rule, status
            ("t1", "c1", "anna", "r", "converted"), ("t2", "c2", "anna", "r", "done"),
            ("t3", "c3", "ben", "r", "no_answer"), ("t4", "c4", "ben", "r", "open"),
            ("t5", "c5", None, "r", "unassigned"), ("t6", "c6", "ben", "r", "expired"),
        ]
        insert_rows(con, "operator_tasks", [
            {"task_id": t, "user_id": u, "operator_id": o, "rule": r, "policy": r, "source": "recall",
             "priority": 1.0, "created_at": created, "assigned_at": created if o else None,
             "due_at": created + DAY, "expires_at": created + 3 * DAY, "status": s,
             "status_updated_at": created} for t, u, o, r, s in tasks])
        insert_rows(con, "task_outcomes", [
            {"task_id": t, "operator_id": o, "outcome": out, "handled_at": created + DAY, "handling_seconds": secs,
             "source_file": "f.csv", "line_number": i + 2, "loaded_at": AS_OF}
            for i, (t, o, out, secs) in enumerate([("t1", "anna", "converted", 600), ("t2", "anna", "done", 200),
                                                   ("t3", "ben", "no_answer", 30)])])
        insert_rows(con, "stg_shop__orders", [
            # c1 buys 2 days after the contact (converted), c2 after 10 days (outside the window),
            # c5 (not contacted) buys 3 days after task creation, c6 never.
            {"order_id": "o1", "user_id": "c1", "ordered_at": created + 3 * DAY, "status": "paid", "amount": 50},
            {"order_id": "o2", "user_id": "c2", "ordered_at": created + 11 * DAY, "status": "paid", "amount": 50},
            {"order_id": "o3", "user_id": "c5", "ordered_at": created + 3 * DAY, "status": "paid", "amount": 50},
            {"order_id": "o4", "user_id": "c6", "ordered_at": created + 2 * DAY, "status": "cancelled",
             "amount": 50},
        ])


def test_banner_ctr_and_operator_efficiency(tmp_path: Path):
    warehouse, target = tmp_path / "wh.duckdb", tmp_path / "target"
    seed(warehouse)
    result = dbt_build(warehouse, target, "banner_ctr", "operator_efficiency")
    assert result.returncode == 0, result.stdout[-4000:]
    with connect(warehouse, read_only=True) as con:
        ctr = {(c, f, s): (i, k, uv, round(r, 4) if r is not None else None) for c, f, s, i, k, uv, r in con.execute(
            "select creative_id, segment_family, segment, impressions, clicks, unique_viewers, ctr from banner_ctr"
        ).fetchall()}
        eff = {row[0]: row[1:] for row in con.execute(
            "select operator_id, tasks_assigned, tasks_handled, tasks_contacted, completion_rate, "
            "avg_handling_seconds, mature_contacts, converted_within_window, conversion_rate, "
            "baseline_conversion_rate from operator_efficiency").fetchall()}
    assert ctr[("hero_a", "all", "all")] == (4, 1, 3, 0.25)  # the late click is after as_of
    assert ctr[("hero_a", "rfm", "champions")] == (2, 1, 1, 0.5)
    assert ctr[("hero_a", "rfm", "at_risk")] == (1, 0, 1, 0.0)
    assert ctr[("hero_b", "all", "all")] == (1, 0, 1, 0.0)
    # Baseline for rule r: uncontacted c3 (no answer, no order), c5 (unassigned, bought), c6 (expired) -> 1/3.
    assert eff["anna"][:8] == (2, 2, 2, 1.0, 400.0, 2, 1, 0.5)
    assert eff["anna"][8] == pytest.approx(1 / 3)
    assert eff["ben"][:4] == (3, 1, 0, pytest.approx(1 / 3))
    assert eff["ben"][6:8] == (0, None)

