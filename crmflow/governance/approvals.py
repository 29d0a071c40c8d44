"""Approvals, enable/disable and the audit trail in the operational store, and the gate they make.

A journey runs (enrols, advances, plans, sends) only when the gate says so:
- a launcher's latest `disable` (without a later `enable`) stops it, whatever else holds;
- with approval required (roles.yaml `approval.required`), its current version needs an approval by
  someone who holds the approver role for it now, and, under the two-person rule, who is not one of
  that version's authors (recorded with the approval).
Every approval, enable and disable is a governance_audit row. Portable SQL (DuckDB and PostgreSQL).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crmflow.errors import CrmflowUserError
from crmflow.governance.roles import Governance
from crmflow.governance.versions import SHORT
from crmflow.warehouse import Warehouse


class GovernanceError(CrmflowUserError):
    """Someone may not do what they asked (no such person, missing role, two-person rule)."""


@dataclass(frozen=True)
class Subject:
    """A journey at one version: its id, file path under marketing/, version hash and authors."""

    journey_id: str
    path: str
    version: str
    authors: tuple[str, ...]


@dataclass(frozen=True)
class Gate:
    runs: bool
    state: str  # approved | not_required | not_approved | disabled
    reason: str  # one line: who approved, or why it does not run and what to do

    @property
    def decision_reason(self) -> str:
        """The journey_decisions.reason of a skipped tick."""
        return f"governance:{self.state}: {self.reason}"


def _key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _audit(wh: Warehouse, action: str, subject: Subject, actor: str, detail: str | None, at: datetime) -> None:
    wh.execute("""insert into governance_audit (audit_id, action, journey_id, version, actor, detail, recorded_at)
                  values ($id, $action, $jid, $version, $actor, $detail, $at) on conflict do nothing""",
               {"id": _key(action, subject.journey_id, subject.version, actor, at.isoformat()), "action": action,
                "jid": subject.journey_id, "version": subject.version, "actor": actor, "detail": detail, "at": at})


def person_with(governance: Governance, who: str, role: str, subject: Subject, what: str | None = None) -> str:
    """The id of `who` if they hold `role` for the subject (`what` names it in the error; default the journey)."""
    person = governance.person(who)
    if person is None:
        known = ", ".join(p.id for p in governance.config.people) or "nobody"
        raise GovernanceError(f"{governance.source}: no person {who!r} (known: {known})")
    if not governance.has_role(person.id, role, subject.journey_id, subject.path):
        holders = ", ".join(governance.holders(role, subject.journey_id, subject.path)) or "nobody"
        raise GovernanceError(f"{person.id} does not hold the {role} role for {what or 'journey ' + subject.journey_id} "
                              f"({role}s: {holders}; {governance.source})")
    return person.id


def _is_author(governance: Governance, who: str, authors: tuple[str, ...] | list[str]) -> bool:
    return bool(governance.identities(who) & {a.lower() for a in authors})


def approve(wh: Warehouse, governance: Governance, subject: Subject, who: str, comment: str | None,
            at: datetime) -> bool:
    """Record `who`'s approval of this version (and its audit row); False if they had already approved it."""
    approver = person_with(governance, who, "approver", subject)
    if governance.config.approval.two_person and _is_author(governance, approver, subject.authors):
        others = [p for p in governance.holders("approver", subject.journey_id, subject.path)
                  if not _is_author(governance, p, subject.authors)]
        raise GovernanceError(f"{approver} is an author of {subject.journey_id} version {subject.version[:SHORT]} "
                              f"(authors: {', '.join(subject.authors)}); the two-person rule needs another approver "
                              f"({', '.join(others) or 'nobody else holds the role'})")
    return insert_approval(wh, subject, approver, comment, at)


def insert_approval(wh: Warehouse, subject: Subject, approver: str, comment: str | None, at: datetime) -> bool:
    """The journey_approvals row and its audit row of a checked approval; False if already recorded."""
    with wh.transaction():
        inserted = wh.fetch_rows(
            """insert into journey_approvals (approval_id, journey_id, version, approver, authors, comment, approved_at)
               values ($id, $jid, $version, $approver, $authors, $comment, $at) on conflict do nothing
               returning approval_id""",
            {"id": _key(subject.journey_id, subject.version, approver), "jid": subject.journey_id,
             "version": subject.version, "approver": approver, "authors": ",".join(subject.authors),
             "comment": comment, "at": at})
        if inserted:
            _audit(wh, "approve", subject, approver, comment, at)
    return bool(inserted)


def switch(wh: Warehouse, governance: Governance, subject: Subject, who: str, action: str, reason: str | None,
           at: datetime) -> None:
    """A launcher's enable or disable (the kill switch), with its audit row."""
    if action not in ("enable", "disable"):
        raise ValueError(f"unknown switch action {action!r}")
    launcher = person_with(governance, who, "launcher", subject)
    with wh.transaction():
        _audit(wh, action, subject, launcher, reason, at)


def _latest_switch(wh: Warehouse, journey_id: str) -> tuple[Any, ...] | None:
    rows = wh.fetch_rows("""select action, actor, recorded_at, detail from governance_audit
                            where journey_id = $jid and action in ('enable', 'disable')
                            order by recorded_at desc, audit_id desc limit 1""", {"jid": journey_id})
    return rows[0] if rows else None


def gate(wh: Warehouse, governance: Governance, subject: Subject) -> Gate:
    """Whether this journey version may run now, and why (the governance tables must exist)."""
    switched = _latest_switch(wh, subject.journey_id)
    if switched is not None and switched[0] == "disable":
        why = f": {switched[3]}" if switched[3] else ""
        return Gate(False, "disabled", f"disabled by {switched[1]} at {switched[2].isoformat()}{why}; "
                                       f"a launcher re-enables it with `crmflow journeys enable {subject.journey_id} --as <launcher>`")
    if not governance.required:
        source = governance.source or "no roles.yaml"
        return Gate(True, "not_required", f"approval not required ({source})")
    rows = wh.fetch_rows("""select approver, authors, approved_at from journey_approvals
                            where journey_id = $jid and version = $version order by approved_at, approver""",
                         {"jid": subject.journey_id, "version": subject.version})
    problems = []
    for approver, authors, approved_at in rows:
        if not governance.has_role(approver, "approver", subject.journey_id, subject.path):
            problems.append(f"{approver} no longer holds the approver role")
        elif governance.config.approval.two_person and _is_author(governance, approver, (authors or "").split(",")):
            problems.append(f"{approver} is an author (two-person rule)")
        else:
            return Gate(True, "approved", f"version {subject.version[:SHORT]} approved by {approver} "
                                          f"at {approved_at.isoformat()}")
    approvers = ", ".join(governance.holders("approver", subject.journey_id, subject.path)) or "nobody"
    found = f" ({'; '.join(problems)})" if problems else ""
    return Gate(False, "not_approved",
                f"version {subject.version[:SHORT]} is not approved{found}: enrols nobody and sends nothing until "
                f"an approver ({approvers}) runs `crmflow journeys approve {subject.journey_id} --as <approver>`")


def record_skipped_tick(wh: Warehouse, journey_id: str, as_of: datetime, why: Gate) -> None:
    """One journey-level `skipped` decision per tick the gate stopped (a rerun adds nothing)."""
    wh.execute("""insert into journey_decisions (decision_key, journey_id, user_id, enrolment_id, message_key,
                      step_id, decision, reason, decided_at)
                  values ($key, $jid, null, null, null, null, 'skipped', $reason, $as_of) on conflict do nothing""",
               {"key": _key(journey_id, "skipped", "governance", as_of.isoformat()), "jid": journey_id,
                "reason": why.decision_reason, "as_of": as_of})


def history(wh: Warehouse, journey_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest audit rows (all journeys, or one), newest first."""
    where = "where journey_id = $jid" if journey_id else ""
    rows = wh.fetch_rows(f"""select recorded_at, action, journey_id, version, actor, detail from governance_audit
                             {where} order by recorded_at desc, audit_id desc limit $limit""", {"jid": journey_id, "limit": limit})
    return [dict(zip(("recorded_at", "action", "journey_id", "version", "actor", "detail"), r, strict=True)) for r in rows]
