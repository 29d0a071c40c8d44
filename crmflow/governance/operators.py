"""The operator role ("works tasks"): who may be assigned a task and report its outcome.

marketing/roles.yaml is the one source of truth for who is an operator; marketing/operators.yaml
holds each operator's capacity, region and skills under the same id. The rule is enforced once the
roles file grants the operator role to anyone (a roles file with no operator grant leaves tasks as
before): an operator in operators.yaml without the role is skipped with a warning naming
operators.yaml:line (skipped, not a config error, so one missing grant does not stop every task);
a task goes only to an operator holding the role for its rule (`only:` patterns match the rule id);
an outcome reported by anyone but the task's operator, or by someone without the role for the
task's rule, is quarantined as `not_an_operator` (crmflow/tasks/outcomes.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from crmflow.governance.roles import Governance


@dataclass(frozen=True)
class OperatorGate:
    """None of this applies when `enforced` is false."""

    governance: Governance
    enforced: bool

    def may_work(self, operator_id: str, rule: str) -> bool:
        return not self.enforced or self.governance.has_role(operator_id, "operator", rule or "")

    def allowed_pairs(self, operator_ids: list[str], rules: list[str]) -> list[tuple[str, str]]:
        """(operator_id, rule) pairs allowed: people x rules of the config, never per customer."""
        return [(op, rule) for op in operator_ids for rule in rules if self.may_work(op, rule)]


def operator_gate(governance: Governance) -> OperatorGate:
    enforced = governance.source is not None and any(
        (grant if isinstance(grant, str) else grant.role) == "operator"
        for person in governance.config.people for grant in person.roles)
    return OperatorGate(governance, enforced)


def roster_warnings(gate: OperatorGate, roster_path: Path, operator_ids: list[str]) -> list[str]:
    """One line per roster operator without the operator role anywhere (`file:line: ...`)."""
    if not gate.enforced:
        return []
    lines = Path(roster_path).read_text(encoding="utf-8").splitlines() if Path(roster_path).exists() else []
    out = []
    for op in operator_ids:
        person = gate.governance.person(op)
        if person is not None and any((g if isinstance(g, str) else g.role) in ("operator", "admin")
                                      for g in person.roles):
            continue
        line = next((n for n, text in enumerate(lines, 1)
                     if re.match(rf"^\s*-?\s*id:\s*['\"]?{re.escape(op)}['\"]?\s*(#.*)?$", text)), 0)
        out.append(f"{roster_path}:{line}: operators.{op}: skipped, {op!r} has no operator role in "
                   f"{gate.governance.source}")
    return out
