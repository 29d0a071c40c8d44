"""Re-competing tasks keep what the docs promise: a reassigned task never goes back to the operator
who let it expire (also after it waited unassigned, or expired again unassigned), and an unassigned
task keeps its id and dates when it is finally assigned (docs/banners-and-tasks.md, One run)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest
from helpers_banners_tasks import AS_OF, insert_rows, make_lifecycle, make_profiles

from crmflow.tasks.config import OperatorRoster, TaskRules
from crmflow.tasks.engine import run_task_rules

UTC = ZoneInfo("UTC")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def roster(anna_capacity: int = 10, ben_active: bool = True) -> OperatorRoster:
    base = {"team": "care", "region": "DACH", "languages": ["de"]}
    return OperatorRoster.model_validate({"regions": {"DACH": ["DE"]}, "operators": [
        {**base, "id": "anna", "daily_capacity": anna_capacity},
        {**base, "id": "ben", "daily_capacity": 10, "active": ben_active},
    ]})


def rules(**policy) -> TaskRules:
    return TaskRules.model_validate({"rules": [{
        "id": "silent", "frequency": "monthly", "validity_days": 2, "due_hours": 8, "on_expiry": "reassign",
        "recall": {"predicate": {"predicate": "lifecycle_stage", "stages": ["silent"]}},
        "matching": {"region": "ignore", "language": "ignore"}, **policy}]})


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    make_profiles(connection, [{"user_id": "u1", "locale": "de-DE", "country": "DE", "revenue": 500}])
    make_lifecycle(connection, {"u1": "silent"})
    yield connection
    connection.close()


def rows(con) -> list[tuple]:
    return con.execute("select task_id, source, operator_id, status, reassigned_from from operator_tasks "
                       "order by created_at, task_id").fetchall()


def test_reassigned_task_waiting_unassigned_never_goes_back_to_who_let_it_expire(con):
    cfg = rules()
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF, UTC)
    [(first_id, _, owner, _, _)] = rows(con)
    assert owner == "anna"
    # Anna lets it expire; Ben is away: the replacement waits unassigned rather than go back to Anna.
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF + 3 * DAY, UTC)
    [_, (second_id, source, owner, status, parent)] = rows(con)
    assert (source, owner, status, parent) == ("reassign", None, "unassigned", first_id)
    # The bug: the next run let it compete with no excluded operator, and Anna (the previous owner,
    # capacity free) took it back.
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF + 3 * DAY + HOUR, UTC)
    assert rows(con)[1][2:4] == (None, "unassigned")
    run_task_rules(con, cfg, roster(ben_active=True), AS_OF + 3 * DAY + 2 * HOUR, UTC)
    assert rows(con)[1] == (second_id, "reassign", "ben", "open", first_id)


def test_exclusion_follows_a_chain_of_unassigned_expiries(con):
    cfg = rules()
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF, UTC)
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF + 3 * DAY, UTC)  # anna's task expired
    # The unassigned replacement expires too; its own replacement must still avoid Anna.
    run_task_rules(con, cfg, roster(ben_active=False), AS_OF + 6 * DAY, UTC)
    chain = rows(con)
    assert [r[3] for r in chain] == ["expired", "expired", "unassigned"]
    assert chain[2][4] == chain[1][0] and chain[2][2] is None
    run_task_rules(con, cfg, roster(ben_active=True), AS_OF + 6 * DAY + HOUR, UTC)
    assert rows(con)[2][2:4] == ("ben", "open")


def test_journey_task_of_an_unknown_queue_uses_default_and_is_counted(con):
    con.execute("create table journey_task_requests (request_key varchar, user_id varchar, journey_id varchar, "
                "step_id varchar, queue varchar, priority varchar, note varchar, requested_at timestamptz)")
    insert_rows(con, "journey_task_requests", [
        {"request_key": f"r{i}", "user_id": "u1", "journey_id": f"j{i}", "step_id": "call", "queue": queue,
         "priority": "normal", "note": None, "requested_at": AS_OF - HOUR}
        for i, queue in enumerate(["gone", "gone", "default"])])
    cfg = TaskRules.model_validate({"journey_queues": {"default": {"validity_days": 4}}})
    stats = run_task_rules(con, cfg, roster(), AS_OF, UTC)
    assert stats.unknown_queues == {"gone": 2}
    policies = con.execute("select distinct policy, expires_at from operator_tasks").fetchall()
    assert policies == [("queue:default", AS_OF + 4 * DAY)]
    # Counted once, when the task is created, not on every later run.
    assert run_task_rules(con, cfg, roster(), AS_OF + HOUR, UTC).unknown_queues == {}


def test_unassigned_task_keeps_its_id_and_dates_when_finally_assigned(con):
    cfg = rules(validity_days=3, due_hours=8)
    run_task_rules(con, cfg, roster(anna_capacity=0, ben_active=False), AS_OF, UTC)
    before = con.execute("select task_id, created_at, due_at, expires_at, status from operator_tasks").fetchall()
    assert before[0][2:] == (AS_OF + 8 * HOUR, AS_OF + 3 * DAY, "unassigned")
    run_task_rules(con, cfg, roster(anna_capacity=5, ben_active=False), AS_OF + 5 * HOUR, UTC)
    after = con.execute("select task_id, created_at, due_at, expires_at, status, operator_id, assigned_at "
                        "from operator_tasks").fetchall()
    # Same id and dates (the bug moved due_at to assignment time + due_hours); assigned_at is new.
    assert after == [(*before[0][:4], "open", "anna", AS_OF + 5 * HOUR)]
