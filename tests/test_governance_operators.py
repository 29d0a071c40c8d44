"""The operator role: tasks only go to people holding it for the task's rule, a roster operator
without it is skipped with a file:line warning, and outcomes reported by anyone but the task's
operator with the role are quarantined as not_an_operator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from helpers_banners_tasks import AS_OF, make_lifecycle, make_profiles

from crmflow.governance.operators import operator_gate, roster_warnings
from crmflow.governance.roles import load_governance
from crmflow.tasks.config import OperatorRoster, TaskRules, load_roster
from crmflow.tasks.engine import run_task_rules
from crmflow.tasks.outcomes import QUARANTINE_REASONS, ingest_task_outcomes

REPO = Path(__file__).resolve().parent.parent
ROLES = """approval:
  required: true
people:
  - id: anna
    email: anna@x.example
    roles: [operator]
  - id: ben
    email: ben@x.example
    roles:
      - role: operator
        only: ["vip_*"]
  - id: carl
    email: carl@x.example
    roles: [author]
"""
ROSTER = """regions:
  DACH: [DE]
operators:
  - id: anna
    team: t
    region: DACH
    languages: [de]
    daily_capacity: 10
  - id: ben
    team: t
    region: DACH
    languages: [de]
    daily_capacity: 10
  - id: carl
    team: t
    region: DACH
    languages: [de]
    daily_capacity: 10
"""


def _gate(tmp_path: Path, roles: str = ROLES):
    (tmp_path / "roles.yaml").write_text(roles)
    (tmp_path / "operators.yaml").write_text(ROSTER)
    return operator_gate(load_governance(tmp_path, env={}))


def _world(gate) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    make_profiles(con, [{"user_id": f"u{i}", "locale": "de", "country": "DE", "revenue": 10 - i} for i in range(6)])
    make_lifecycle(con, {f"u{i}": "silent" for i in range(6)})
    rules = TaskRules.model_validate({"rules": [
        {"id": rule, "recall": {"predicate": {"predicate": "lifecycle_stage", "stages": ["silent"]}},
         "matching": {"region": "ignore", "language": "ignore", "industry": "ignore"}}
        for rule in ("vip_call", "winback")]})
    roster = OperatorRoster.model_validate({
        "regions": {"DACH": ["DE"]},
        "operators": [{"id": i, "team": "t", "region": "DACH", "languages": ["de"], "daily_capacity": 10}
                      for i in ("anna", "ben", "carl")]})
    run_task_rules(con, rules, roster, AS_OF, ZoneInfo("UTC"), gate.may_work if gate.enforced else None)
    return con


def test_tasks_go_only_to_operators_holding_the_role_for_the_rule(tmp_path: Path):
    con = _world(_gate(tmp_path))
    owners = con.execute("select rule, operator_id, count(*) from operator_tasks group by all order by all").fetchall()
    assert {op for _, op, _ in owners} <= {"anna", "ben"}  # carl (author only) never gets one
    assert {op for rule, op, _ in owners if rule == "winback"} == {"anna"}  # ben only for vip_*
    assert {op for rule, op, _ in owners if rule == "vip_call"} == {"anna", "ben"}
    assert sum(n for *_, n in owners) == 12


def test_without_operator_grants_every_roster_operator_works(tmp_path: Path):
    gate = _gate(tmp_path, ROLES.replace("operator", "author"))
    assert not gate.enforced
    con = _world(gate)
    assert {r[0] for r in con.execute("select operator_id from operator_tasks").fetchall()} == {"anna", "ben", "carl"}


def test_roster_operator_without_the_role_is_a_warning_naming_file_and_line(tmp_path: Path):
    gate = _gate(tmp_path)
    warnings = roster_warnings(gate, tmp_path / "operators.yaml", ["anna", "ben", "carl"])
    assert warnings == [f"{tmp_path / 'operators.yaml'}:14: operators.carl: skipped, 'carl' has no operator "
                        f"role in {tmp_path / 'roles.yaml'}"]


def test_outcomes_from_a_non_operator_are_quarantined(tmp_path: Path):
    gate = _gate(tmp_path)
    con = _world(gate)
    tasks = con.execute("select task_id, operator_id, rule from operator_tasks order by task_id").fetchall()
    anna_vip = next(t for t, op, r in tasks if op == "anna" and r == "vip_call")
    anna_win = next(t for t, op, r in tasks if op == "anna" and r == "winback")
    ben_vip = next(t for t, op, r in tasks if op == "ben")
    folder = tmp_path / "landing" / "task_outcomes"
    folder.mkdir(parents=True)
    (folder / "o.csv").write_text(
        "task_id,outcome,handled_at,handling_seconds,operator_id,notes\n"
        f"{anna_vip},done,2026-11-22T08:00:00Z,30,anna,\n"      # 2: her task: loads
        f"{ben_vip},done,2026-11-22T08:00:00Z,30,anna,\n"       # 3: not her task
        f"{anna_win},done,2026-11-22T08:00:00Z,30,carl,\n"      # 4: carl has no operator role
        f"{ben_vip},done,2026-11-22T09:00:00Z,30,,\n"           # 5: nobody reported it
        f"{ben_vip},converted,2026-11-22T10:00:00Z,30,ben,\n"   # 6: his task: loads
    )
    stats = ingest_task_outcomes(con, tmp_path / "landing", AS_OF + timedelta(hours=6), gate)
    assert (stats.rows_loaded, stats.rows_quarantined) == (2, 3)
    assert stats.reasons == {"not_an_operator": 3} and "not_an_operator" in QUARANTINE_REASONS
    assert con.execute("select line_number, reason, field from quarantine_task_outcomes order by 1").fetchall() == [
        (3, "not_an_operator", "operator_id"), (4, "not_an_operator", "operator_id"),
        (5, "not_an_operator", "operator_id")]
    status = dict(con.execute("select task_id, status from operator_tasks").fetchall())
    assert (status[anna_vip], status[ben_vip], status[anna_win]) == ("done", "converted", "open")


def test_a_role_withdrawn_later_quarantines_that_operators_outcomes(tmp_path: Path):
    con = _world(_gate(tmp_path))
    ben_vip = con.execute("select task_id from operator_tasks where operator_id = 'ben' limit 1").fetchall()[0][0]
    folder = tmp_path / "landing" / "task_outcomes"
    folder.mkdir(parents=True)
    (folder / "o.csv").write_text("task_id,outcome,handled_at,handling_seconds,operator_id\n"
                                  f"{ben_vip},done,2026-11-22T08:00:00Z,30,ben\n")
    withdrawn = _gate(tmp_path, ROLES.replace('only: ["vip_*"]', 'only: ["other_*"]'))
    stats = ingest_task_outcomes(con, tmp_path / "landing", AS_OF + timedelta(hours=6), withdrawn)
    assert stats.reasons == {"not_an_operator": 1} and stats.rows_loaded == 0


def test_every_shipped_roster_operator_holds_the_operator_role():
    gate = operator_gate(load_governance(REPO / "marketing", env={}))
    roster = load_roster(REPO / "marketing" / "operators.yaml")
    assert gate.enforced
    assert roster_warnings(gate, REPO / "marketing" / "operators.yaml", [op.id for op in roster.operators]) == []
