"""Dispatch: claim -> render -> send -> record, crash-safe and at-most-once by default.

1. Take the dispatch lock (an OS file lock next to the warehouse): two runs never both dispatch.
2. Reconcile rows left in 'sending' by a crashed run: 'unknown' (at_most_once, reported, never resent)
   or back to 'planned' (at_least_once), per channel.
3. Apply policies (consent, address, quiet hours, caps).
4. Per channel, per batch: claim (UPDATE state='sending', committed), render only the claimed messages,
   send, record the results (committed). A crash between claim and record leaves 'sending' rows,
   which step 2 of the next dispatch turns into 'unknown': nothing is sent twice.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pyarrow as pa

from connectors.channels.base import Channel, OutboundMessage, SendResult
from crmflow.journeys.policies import PolicyReport, apply_policies
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.recommendations import load_recommendations
from crmflow.journeys.schema import Journey
from crmflow.journeys.sql import run
from crmflow.journeys.tables import ensure_journey_tables
from crmflow.journeys.templates import message_context, render, sms_info
from crmflow.warehouse import ensure_ops_tables

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}
DEAD_REASON = {"email": "bounce", "sms": "undelivered", "push": "dead_token", "webhook": "dead_endpoint"}


class DispatchLockedError(RuntimeError):
    pass


@contextmanager
def dispatch_lock(lock_path: Path | None) -> Iterator[None]:
    """Non-blocking exclusive lock; a second dispatcher fails fast instead of sending twice."""
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DispatchLockedError(f"another dispatch holds {lock_path}; not dispatching") from exc
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lock_path_for(warehouse: Path | str) -> Path:
    return Path(str(warehouse) + ".dispatch.lock")


@dataclass
class DispatchReport:
    reconciled_unknown: list[dict[str, Any]] = field(default_factory=list)
    requeued: int = 0
    policy: PolicyReport = field(default_factory=PolicyReport)
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed, "sent": self.sent, "failed": self.failed,
            "reconciled_unknown": len(self.reconciled_unknown), "requeued_after_crash": self.requeued,
            "policy_decisions": dict(self.policy.decisions), "sent_by_channel": dict(self.by_channel),
        }


def reconcile(con: duckdb.DuckDBPyConnection, as_of: datetime, policies: Policies, report: DispatchReport) -> None:
    rows = run(con, "select distinct channel from send_ledger where state = 'sending'").fetchall()
    for (channel,) in rows:
        params = {"as_of": as_of, "channel": channel}
        if policies.dispatch.semantics(channel) == "at_least_once":
            requeued = run(con, """update send_ledger set state = 'planned', reason = 'requeued_after_crash',
                                   updated_at = $as_of where state = 'sending' and channel = $channel
                                   returning message_key""", params).fetchall()
            report.requeued += len(requeued)
            decision, reason = "requeued", "requeued_after_crash"
            keys = [r[0] for r in requeued]
        else:
            unknown = run(con, """update send_ledger set state = 'unknown',
                                  reason = 'claimed but no result recorded (crash?); not resent (at_most_once)',
                                  updated_at = $as_of where state = 'sending' and channel = $channel
                                  returning message_key, journey_id, step_id, user_id, channel, attempts""",
                          params).fetchall()
            for key, jid, sid, uid, ch, attempts in unknown:
                report.reconciled_unknown.append({"message_key": key, "journey_id": jid, "step_id": sid,
                                                  "user_id": uid, "channel": ch, "attempts": attempts})
            decision, reason = "unknown", "crash_between_claim_and_record"
            keys = [r[0] for r in unknown]
        if keys:
            run(con, """insert into journey_decisions
                select sha256(message_key || '|' || $decision || '|' || cast($as_of as varchar)), journey_id,
                       user_id, enrolment_id, message_key, step_id, $decision, $reason, $as_of
                from send_ledger where message_key in (select unnest($keys)) on conflict do nothing""",
                {**params, "decision": decision, "reason": reason, "keys": keys})


def claim_batch(con: duckdb.DuckDBPyConnection, channel: str, as_of: datetime, journey_ids: list[str],
                limit: int) -> list[str]:
    """Mark up to `limit` due rows as 'sending' (committed on return: autocommit)."""
    rows = run(con, """update send_ledger set state = 'sending', attempts = attempts + 1, updated_at = $as_of
        where message_key in (
            select message_key from send_ledger
            where state = 'planned' and channel = $channel and send_after <= $as_of
              and journey_id in (select unnest($jids))
            order by priority desc, send_after, message_key limit $limit)
        returning message_key""", {"as_of": as_of, "channel": channel, "jids": journey_ids, "limit": limit}).fetchall()
    return sorted(r[0] for r in rows)


def build_messages(con: duckdb.DuckDBPyConnection, keys: list[str], journeys: Mapping[str, Journey],
                   policies: Policies) -> tuple[list[OutboundMessage], dict[str, str], dict[str, str]]:
    """Render the claimed messages (per message: bounded by the batch). Returns messages, content
    refs by key, and render errors by key."""
    con.register("_claimed_keys", pa.table({"message_key": keys}))
    try:
        cur = con.execute("""select l.message_key, l.journey_id, l.step_id, l.variant, l.template, l.channel, p.*
                             from send_ledger l join _claimed_keys k using (message_key)
                             left join customer_profile p on p.user_id = l.user_id""")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.unregister("_claimed_keys")
    recommendations = load_recommendations(con, [row["user_id"] for row in rows])
    messages: list[OutboundMessage] = []
    refs: dict[str, str] = {}
    errors: dict[str, str] = {}
    for row in rows:
        key = row["message_key"]
        journey = journeys[row["journey_id"]]
        template = journey.templates.get(row["template"])
        if template is None:
            errors[key] = f"template {row['template']!r} no longer defined in journey {journey.id}"
            continue
        profile = {k: v for k, v in row.items() if k not in ("message_key", "journey_id", "step_id", "variant",
                                                              "template", "channel")}
        context = {**profile, "recommendations": recommendations.get(profile.get("user_id"), []),
                   **message_context(journey.id, journey.name, row["step_id"], row["variant"], key)}
        try:
            rendered = render(template, profile.get("locale"), context)
        except jinja2.TemplateError as exc:
            errors[key] = f"render error: {exc}"
            continue
        if row["channel"] == "sms":
            info = sms_info(rendered.fields["text"])
            if info.segments > policies.sms_max_segments:
                errors[key] = f"sms too long: {info.segments} segments ({info.encoding}) > {policies.sms_max_segments}"
                continue
        channel = row["channel"]
        to = profile.get("user_id") if channel == "webhook" else profile.get(ADDRESS_COLUMN[channel])
        if channel == "email" and to:
            to = str(to).strip().lower()
        f = rendered.fields
        messages.append(OutboundMessage(
            message_key=key, channel=channel, user_id=str(profile.get("user_id")), to=str(to or ""),
            journey_id=journey.id, step_id=row["step_id"], variant=row["variant"], subject=f.get("subject"),
            body=f.get("body") or f.get("text") or "", html=f.get("html"), title=f.get("title"),
            deep_link=f.get("deep_link"), locale=rendered.locale,
            metadata={"content_ref": rendered.content_ref},
        ))
        refs[key] = rendered.content_ref
    return messages, refs, errors


def record_results(con: duckdb.DuckDBPyConnection, as_of: datetime, results: list[SendResult],
                   refs: Mapping[str, str], messages: Mapping[str, OutboundMessage]) -> None:
    if not results:
        return
    table = pa.table({
        "message_key": [r.message_key for r in results],
        "status": [r.status for r in results],
        "provider_message_id": [r.provider_message_id for r in results],
        "error": [r.error for r in results],
        "content_ref": [refs.get(r.message_key) for r in results],
        "attempts": [r.attempts for r in results],
    })
    con.register("_send_results", table)
    try:
        run(con, """update send_ledger l set state = r.status, provider_message_id = r.provider_message_id,
                error = r.error, content_ref = coalesce(r.content_ref, l.content_ref),
                attempts = l.attempts - 1 + greatest(r.attempts, 1),
                sent_at = case when r.status = 'sent' then $as_of else l.sent_at end, updated_at = $as_of
            from _send_results r where l.message_key = r.message_key and l.state = 'sending'""", {"as_of": as_of})
    finally:
        con.unregister("_send_results")
    dead = [(messages[r.message_key], r) for r in results if r.address_dead and r.message_key in messages]
    if dead:
        con.executemany(
            "insert into suppression_list values (?, ?, ?, ?, 'journeys', ?) on conflict do nothing",
            [[m.channel, m.to, m.user_id, DEAD_REASON[m.channel], as_of] for m, _ in dead],
        )


def _fail(con: duckdb.DuckDBPyConnection, as_of: datetime, errors: Mapping[str, str]) -> None:
    if not errors:
        return
    con.executemany(
        "update send_ledger set state = 'failed', error = ?, reason = 'render_failed', updated_at = ? "
        "where message_key = ? and state = 'sending'",
        [[err, as_of, key] for key, err in errors.items()],
    )


def dispatch(con: duckdb.DuckDBPyConnection, as_of: datetime, channels: Mapping[str, Channel],
             journeys: Mapping[str, Journey], policies: Policies, lock_path: Path | None = None) -> DispatchReport:
    """One dispatch run. Only journeys in `journeys` (the valid ones) are claimed and sent."""
    report = DispatchReport()
    ensure_journey_tables(con)
    ensure_ops_tables(con)
    with dispatch_lock(lock_path):
        reconcile(con, as_of, policies, report)
        report.policy = apply_policies(con, as_of, policies, journeys)
        journey_ids = sorted(journeys)
        budget = policies.dispatch.max_per_run
        for name in sorted(channels):
            channel = channels[name]
            batch_size = max(1, min(policies.dispatch.batch_size, getattr(channel, "max_batch", 500)))
            while budget > 0:
                keys = claim_batch(con, name, as_of, journey_ids, min(batch_size, budget))
                if not keys:
                    break
                budget -= len(keys)
                report.claimed += len(keys)
                messages, refs, errors = build_messages(con, keys, journeys, policies)
                _fail(con, as_of, errors)
                results = channel.send_batch(messages) if messages else []
                record_results(con, as_of, results, refs, {m.message_key: m for m in messages})
                sent = sum(1 for r in results if r.status == "sent")
                report.sent += sent
                report.failed += len(results) - sent + len(errors)
                report.by_channel[name] = report.by_channel.get(name, 0) + sent
    return report
