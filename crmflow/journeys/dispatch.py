"""Dispatch: claim -> render -> send -> record, crash-safe and at-most-once by default.

1. Take the dispatch lock (an OS file lock next to the warehouse): two runs never both dispatch.
2. Reconcile rows left in 'sending' by a crashed run: 'unknown' (at_most_once, reported, never resent)
   or back to 'planned' (at_least_once), per channel.
3. Apply policies (consent, address, quiet hours, caps).
4. Stage the due messages once (one join with their profile columns and recommendations, temp table).
5. Per channel, per batch: claim (UPDATE state='sending', committed), render the claimed messages from
   the staged rows, send, record the results (one UPDATE, committed). A crash between claim and record
   leaves 'sending' rows, which step 2 of the next dispatch turns into 'unknown': nothing is sent twice.
   A batch never re-reads customer_profile / customer_recommendations: cost grows with the messages.
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
from crmflow.journeys.columns import profile_columns
from crmflow.journeys.filters import quote_ident
from crmflow.journeys.policies import PolicyReport, apply_policies
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.recommendations import has_recommendations_table, recommendations_sql
from crmflow.journeys.schema import Journey
from crmflow.journeys.sql import run
from crmflow.journeys.tables import ensure_journey_tables
from crmflow.journeys.templates import message_context, render, sms_info, template_variables
from crmflow.warehouse import ensure_ops_tables

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}
DEAD_REASON = {"email": "bounce", "sms": "undelivered", "push": "dead_token", "webhook": "dead_endpoint"}


class DispatchLockedError(RuntimeError):
    pass


class DispatchLedgerChangedError(RuntimeError):
    """Staged rows no longer match the ledger (nothing else may write it while the lock is held)."""


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
            order by priority desc, rowid limit $limit)
        returning message_key""", {"as_of": as_of, "channel": channel, "jids": journey_ids, "limit": limit}).fetchall()
    return sorted(r[0] for r in rows)


MESSAGE_FIELDS = ("message_key", "journey_id", "step_id", "variant", "template", "channel")
# Ledger values staged with each message (StagedLedger, in this order; planned_at also gives `since`).
LEDGER_COLUMNS = ("ledger_rowid", "ledger_attempts", "ledger_content_ref", "ledger_reason", "ledger_sent_at",
                  "ledger_provider_message_id", "ledger_planned_at")
LEDGER_SELECT = ", ".join(f"l.{c.removeprefix('ledger_')} as {c}" for c in LEDGER_COLUMNS)
STAGED = "_dispatch_due"


def staged_columns(con: duckdb.DuckDBPyConnection, journeys: Mapping[str, Journey]) -> tuple[list[str], bool]:
    """The profile columns dispatch needs (what the templates read, plus user_id, locale and the
    addresses) and whether any template reads `recommendations`."""
    names = template_variables(t for j in journeys.values() for t in j.templates.values())
    wanted = names | {"user_id", "locale", *ADDRESS_COLUMN.values()}
    columns = [c for c in profile_columns(con) if c in wanted and c not in (*MESSAGE_FIELDS, "recommendations")]
    return columns, "recommendations" in names and has_recommendations_table(con)


def _staging_sql(due_sql: str, columns: list[str], with_recommendations: bool) -> str:
    """One join of the due ledger rows (`due_sql`: message fields, ledger_user_id, the LEDGER_COLUMNS,
    seq) with their profile columns and recommendations."""
    profile = "".join(f", p.{quote_ident(c)}" for c in columns)
    if with_recommendations:
        recs = (f"left join ({recommendations_sql('due', 'ledger_user_id')}) r on r.user_id = due.ledger_user_id",
                "coalesce(r.recommendations, []) as recommendations")
    else:
        recs = ("", "cast([] as struct(sku varchar, score double, reason varchar, rank integer)[]) "
                    "as recommendations")
    return f"""with due as ({due_sql})
        select due.seq, {", ".join("due." + f for f in (*LEDGER_COLUMNS, *MESSAGE_FIELDS))}{profile},
               {recs[1]}
        from due left join customer_profile p on p.user_id = due.ledger_user_id {recs[0]}
        order by due.seq"""


@dataclass(frozen=True)
class StagedRun:
    ranges: dict[str, tuple[int, int]]  # channel -> (first seq, last seq) in _dispatch_due
    since: datetime | None  # the oldest planned_at among the staged messages


def _since_filter(since: datetime | None, alias: str = "") -> str:
    return "" if since is None else f"and {alias}planned_at >= $since"


def stage_due(con: duckdb.DuckDBPyConnection, as_of: datetime, channel_names: list[str], journey_ids: list[str],
              budget: int, columns: list[str], with_recommendations: bool) -> StagedRun:
    """Once per run, after policies: the next `budget` due messages in claim order (channel by channel
    in `channel_names` order, then priority, then ledger order = oldest planned first), with everything
    rendering needs, in temp table _dispatch_due. Ledger order keeps a batch's rows in few ledger vectors:
    recording 500 rows scattered over the ledger cost ~5x more (DuckDB updates whole string vectors). Batches then claim, render and record by seq range without reading
    customer_profile or customer_recommendations again."""
    due = f"""select l.message_key, l.journey_id, l.step_id, l.variant, l.template, l.channel,
                    l.user_id as ledger_user_id, {LEDGER_SELECT},
                    row_number() over (order by list_position($channels, l.channel), l.priority desc,
                                       l.rowid) as seq
             from send_ledger l
             where l.state = 'planned' and l.send_after <= $as_of
               and l.channel in (select unnest($channels)) and l.journey_id in (select unnest($jids))
             qualify seq <= $budget"""
    run(con, f"create or replace temp table {STAGED} as {_staging_sql(due, columns, with_recommendations)}",
        {"as_of": as_of, "channels": channel_names, "jids": journey_ids, "budget": budget})
    rows = run(con, f"""select channel, min(seq), max(seq), min(ledger_planned_at) from {STAGED}
                        group by channel""").fetchall()
    return StagedRun(ranges={channel: (int(lo), int(hi)) for channel, lo, hi, _ in rows},
                     since=min((since for *_, since in rows), default=None))


@dataclass(frozen=True)
class StagedLedger:
    """The ledger values of a staged message at staging time (under the dispatch lock only this run
    changes them): record_results writes final values by rowid without reading the ledger's columns."""
    rowid: int
    attempts: int
    content_ref: str | None
    reason: str | None
    sent_at: datetime | None
    provider_message_id: str | None
    planned_at: datetime  # carried to the message (outbox lines show it)


def _split_ledger(row: dict[str, Any]) -> StagedLedger:
    """Take the staged ledger values out of a row (what is left is the template context)."""
    return StagedLedger(*(row.pop(c) for c in LEDGER_COLUMNS))


def claim_staged(con: duckdb.DuckDBPyConnection, as_of: datetime, first: int, last: int,
                 since: datetime | None) -> tuple[list[dict[str, Any]], dict[str, StagedLedger]]:
    """Mark the staged messages first..last (one channel's batch) 'sending' (committed on return: autocommit)
    and return their staged rows and ledger values. By rowid (staged; send_ledger has no deletes, so rowids
    hold for the run) and without RETURNING: a semi-join on message_key or RETURNING made the claim ~4x
    and ~8x dearer. Under the dispatch lock every staged row is still 'planned'; if the count says
    otherwise the ledger changed under the dispatcher and the run stops (claimed rows become 'unknown').
    `since` (the oldest staged planned_at) lets DuckDB skip the row groups of older ledger history."""
    params = {"as_of": as_of, "first": first, "last": last, "since": since}
    claimed = run(con, f"""update send_ledger set state = 'sending', attempts = attempts + 1, updated_at = $as_of
        where rowid in (select ledger_rowid from {STAGED} where seq between $first and $last)
          and state = 'planned' {_since_filter(since)}""", params).fetchall()[0][0]
    rows = _fetch_dicts(run(con, f"select * exclude (seq) from {STAGED} "
                                 "where seq between $first and $last order by message_key", params))
    if claimed != len(rows):
        raise DispatchLedgerChangedError(f"claimed {claimed} of {len(rows)} staged messages (seq {first}..{last}): "
                                         "the ledger changed under the dispatcher; stopping")
    ledger = {row["message_key"]: _split_ledger(row) for row in rows}
    return rows, ledger


def _fetch_dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def build_messages(con: duckdb.DuckDBPyConnection, keys: list[str], journeys: Mapping[str, Journey],
                   policies: Policies) -> tuple[list[OutboundMessage], dict[str, str], dict[str, str]]:
    """Render the given claimed messages (stand-alone: reads their profiles and recommendations)."""
    columns, with_recommendations = staged_columns(con, journeys)
    con.register("_claimed_keys", pa.table({"message_key": pa.array(sorted(keys), pa.string())}))
    try:
        due = f"""select l.message_key, l.journey_id, l.step_id, l.variant, l.template, l.channel,
                        l.user_id as ledger_user_id, {LEDGER_SELECT},
                        row_number() over (order by l.message_key) as seq
                 from send_ledger l semi join _claimed_keys k on k.message_key = l.message_key"""
        rows = _fetch_dicts(con.execute(_staging_sql(due, columns, with_recommendations)))
    finally:
        con.unregister("_claimed_keys")
    ledger = {}
    for row in rows:
        del row["seq"]
        ledger[row["message_key"]] = _split_ledger(row)
    return render_messages(rows, journeys, policies, ledger)


def render_messages(rows: list[dict[str, Any]], journeys: Mapping[str, Journey], policies: Policies,
                    ledger: Mapping[str, StagedLedger], sent_at: datetime | None = None,
                    ) -> tuple[list[OutboundMessage], dict[str, str], dict[str, str]]:
    """Render staged rows (message fields, profile columns, recommendations): per message, bounded by
    the batch. Returns messages, content refs by key, and render errors by key. Each message carries
    its ledger planned_at and `sent_at` (the dispatch's as-of; None when only rendering)."""
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
        profile = {k: v for k, v in row.items() if k not in MESSAGE_FIELDS}
        context = {**profile, **message_context(journey.id, journey.name, row["step_id"], row["variant"], key)}
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
            metadata={"content_ref": rendered.content_ref}, planned_at=ledger[key].planned_at, sent_at=sent_at,
        ))
        refs[key] = rendered.content_ref
    return messages, refs, errors


def record_results(con: duckdb.DuckDBPyConnection, as_of: datetime, results: list[SendResult],
                   refs: Mapping[str, str], messages: Mapping[str, OutboundMessage],
                   errors: Mapping[str, str], ledger: Mapping[str, StagedLedger], since: datetime | None) -> None:
    """Record a claimed batch in one set-based UPDATE by rowid: the send results, and render failures
    (`errors`: state 'failed', reason 'render_failed'). Final values come from the staged ledger values
    (attempts as claimed, content_ref/reason/sent_at kept where the result has none), so the UPDATE
    reads no ledger column but state. Dead addresses go to suppression_list."""
    results = [r for r in results if r.message_key in ledger]  # a provider's stray key matches no row
    if not results and not errors:
        return
    keys = [r.message_key for r in results] + list(errors)
    staged = [ledger[k] for k in keys]
    sent = [r.status == "sent" for r in results]
    table = pa.table({
        "ledger_rowid": pa.array([s.rowid for s in staged], pa.int64()),
        "status": pa.array([r.status for r in results] + ["failed"] * len(errors), pa.string()),
        "provider_message_id": pa.array([r.provider_message_id for r in results]
                                        + [s.provider_message_id for s in staged[len(results):]], pa.string()),
        "error": pa.array([r.error for r in results] + list(errors.values()), pa.string()),
        "content_ref": pa.array([refs.get(k) or s.content_ref for k, s in zip(keys, staged, strict=True)], pa.string()),
        # the claim added 1; a result reports the attempts it took (retries)
        "attempts": pa.array([s.attempts + max(r.attempts, 1) for r, s in zip(results, staged, strict=False)]
                             + [s.attempts + 1 for s in staged[len(results):]], pa.int32()),
        "reason": pa.array([s.reason for s in staged[:len(results)]] + ["render_failed"] * len(errors), pa.string()),
        "sent_at": pa.array([as_of if ok else s.sent_at for ok, s in zip(sent, staged, strict=False)]
                            + [s.sent_at for s in staged[len(results):]], pa.timestamp("us", tz="UTC")),
    })
    con.register("_send_results", table)
    try:
        recorded = run(con, f"""update send_ledger l set state = r.status, provider_message_id = r.provider_message_id,
                error = r.error, content_ref = r.content_ref, reason = r.reason, attempts = r.attempts,
                sent_at = r.sent_at, updated_at = $as_of
            from _send_results r where l.rowid = r.ledger_rowid and l.state = 'sending'
              {_since_filter(since, "l.")}""", {"as_of": as_of, "since": since}).fetchall()[0][0]
    finally:
        con.unregister("_send_results")
    if recorded != len(keys):
        raise DispatchLedgerChangedError(f"recorded {recorded} of {len(keys)} results: the ledger changed under "
                                         "the dispatcher; stopping (unrecorded rows stay 'sending' -> 'unknown')")
    dead = [messages[r.message_key] for r in results if r.address_dead and r.message_key in messages]
    if dead:
        con.register("_dead_addresses", pa.table({
            "channel": pa.array([m.channel for m in dead], pa.string()),
            "address": pa.array([m.to for m in dead], pa.string()),
            "user_id": pa.array([m.user_id for m in dead], pa.string()),
            "reason": pa.array([DEAD_REASON[m.channel] for m in dead], pa.string()),
        }))
        try:
            run(con, """insert into suppression_list select channel, address, user_id, reason, 'journeys', $as_of
                        from _dead_addresses on conflict do nothing""", {"as_of": as_of})
        finally:
            con.unregister("_dead_addresses")


def dispatch(con: duckdb.DuckDBPyConnection, as_of: datetime, channels: Mapping[str, Channel],
             journeys: Mapping[str, Journey], policies: Policies, lock_path: Path | None = None) -> DispatchReport:
    """One dispatch run. Only journeys in `journeys` (the valid ones) are claimed and sent."""
    report = DispatchReport()
    ensure_journey_tables(con)
    ensure_ops_tables(con)
    with dispatch_lock(lock_path):
        reconcile(con, as_of, policies, report)
        report.policy = apply_policies(con, as_of, policies, journeys)
        names = sorted(channels)
        columns, with_recommendations = staged_columns(con, journeys)
        staged = stage_due(con, as_of, names, sorted(journeys), policies.dispatch.max_per_run, columns,
                           with_recommendations)
        try:
            for name in names:
                if name not in staged.ranges:
                    continue
                channel = channels[name]
                batch_size = max(1, min(policies.dispatch.batch_size, getattr(channel, "max_batch", 500)))
                lo, hi = staged.ranges[name]
                for first in range(lo, hi + 1, batch_size):
                    last = min(first + batch_size - 1, hi)
                    rows, ledger = claim_staged(con, as_of, first, last, staged.since)
                    if not rows:
                        continue
                    report.claimed += len(rows)
                    messages, refs, errors = render_messages(rows, journeys, policies, ledger, as_of)
                    results = channel.send_batch(messages) if messages else []
                    record_results(con, as_of, results, refs, {m.message_key: m for m in messages}, errors,
                                   ledger, staged.since)
                    sent = sum(1 for r in results if r.status == "sent")
                    report.sent += sent
                    report.failed += len(results) - sent + len(errors)
                    report.by_channel[name] = report.by_channel.get(name, 0) + sent
        finally:
            con.execute(f"drop table if exists {STAGED}")
    return report
