"""Dispatch: claim -> render -> send -> record, crash-safe and at-most-once by default.

Portable SQL through the warehouse interface: the same statements run on DuckDB and PostgreSQL.

1. Take the dispatch lock: an OS file lock next to a DuckDB warehouse, a session advisory lock on
   PostgreSQL. A second dispatch exits at once with one line (DispatchLockedError); while the lock is
   held no other dispatcher is sending, so every row left in 'sending' belongs to a dead worker.
2. Reconcile those rows: claimed but the request never started (outcome 'claimed') -> back to
   'planned' (reason 'released: ...'); the request started (outcome 'requested') -> 'unknown'
   (at_most_once, never resent) or 'planned' (at_least_once), per channel.
3. Settle: delivery events carrying the message key turn unknown rows into 'sent' (settle.py); unknown
   rows past the grace period are closed as 'lost' or resent once, per channel.
4. Apply policies (consent, address, quiet hours, caps).
5. Send: per channel (PostgreSQL: channels in parallel threads, each on its own connection) the due
   messages are staged once (one join with their profile columns and recommendations) in temp tables
   numbered by `seq`. Then, group by group, never more than the channel has in flight at once
   (Channel.max_batch = max_concurrency x messages per request): claim (UPDATE state='sending' with
   the lease: worker_id, lease_until, outcome 'claimed'; on PostgreSQL `for update skip locked`),
   render, mark the group 'requested' just before its requests, send, record the results (one UPDATE
   by message_key: sent / failed / unknown). A kill leaves at most one group per channel and worker
   'sending'. With workers > 1 (PostgreSQL) N forked processes each take one hash partition of the
   users (one user's messages go to one worker), and share each channel's rate limit and 429 pause
   through dispatch_channels (dispatch_limits.py). DuckDB has one writer: one worker.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pyarrow as pa

from connectors.channels.base import Channel, OutboundMessage, SendResult
from crmflow.delivery_events import DEAD_ADDRESS_REASON, suppress
from crmflow.journeys.columns import PROFILE_COLUMNS
from crmflow.journeys.filters import quote_ident
from crmflow.journeys.policies import PolicyReport, apply_policies
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.schema import Journey
from crmflow.journeys.settle import close_after_grace, settle_from_events
from crmflow.journeys.tables import ensure_journey_tables
from crmflow.journeys.templates import message_context, render, sms_info, template_variables
from crmflow.warehouse import Warehouse, as_warehouse, warehouse_for
from crmflow.warehouse.dialect import sha256_hex, skip_locked
from crmflow.warehouse.sql import values_in

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}


class DispatchLockedError(RuntimeError):
    pass


class DispatchLedgerChangedError(RuntimeError):
    """Staged rows no longer match the ledger (nothing else may write it while the lock is held)."""


@contextmanager
def dispatch_lock(lock_path: Path | None) -> Iterator[None]:
    """Non-blocking exclusive lock; a second dispatcher fails fast instead of sending twice. The lock
    file names its holder (pid and since when), for the second dispatcher's one-line message."""
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise DispatchLockedError(f"another dispatch holds {lock_path}"
                                      f"{f' ({holder})' if holder else ''}; not dispatching") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, since {datetime.now(UTC).isoformat(timespec='seconds')}".encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


ADVISORY_KEY = "hashtext('crmflow.journey_dispatch')"


@contextmanager
def postgres_dispatch_lock(wh: Warehouse) -> Iterator[None]:
    """On PostgreSQL: a session advisory lock (released if this process dies), so one dispatch at a time."""
    if wh.dialect != "postgres":
        yield
        return
    if not wh.scalar(f"select pg_try_advisory_lock({ADVISORY_KEY})"):
        since = wh.scalar(f"""select min(a.backend_start) from pg_stat_activity a join pg_locks k on k.pid = a.pid
                              where k.locktype = 'advisory' and k.granted
                                and k.objid = ((({ADVISORY_KEY})::bigint & 4294967295)::text)::oid""")
        raise DispatchLockedError("another dispatch is running on this warehouse"
                                  f"{f' (connected since {since:%Y-%m-%d %H:%M:%S %Z})' if since else ''}; "
                                  "not dispatching")
    try:
        yield
    finally:
        wh.scalar(f"select pg_advisory_unlock({ADVISORY_KEY})")


def lock_path_for(warehouse: Path | str) -> Path:
    return Path(str(warehouse) + ".dispatch.lock")


@dataclass
class DispatchReport:
    reconciled_unknown: list[dict[str, Any]] = field(default_factory=list)
    requeued: int = 0
    released: int = 0  # claimed by a dead worker before its request started: back to 'planned'
    settled: int = 0  # unknown/lost/failed rows a delivery event settled as sent
    lost: int = 0  # unknown past the grace period, closed
    resent: int = 0  # unknown past the grace period, planned once more (resend_once)
    policy: PolicyReport = field(default_factory=PolicyReport)
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0  # sent, no answer (timeout, reset): recorded 'unknown', settled by its event
    by_channel: dict[str, int] = field(default_factory=dict)
    workers: int = 1
    workers_lost: list[str] = field(default_factory=list)  # workers that died (killed) before reporting
    settings: str = ""  # approval state of channels.yaml + policies.yaml (crmflow/governance/settings_approval.py)
    held: str = ""  # why dispatch held (sent nothing, changed nothing): the settings are not approved

    def add(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.failed += other.failed
        self.unknown += other.unknown
        for name, count in other.by_channel.items():
            self.by_channel[name] = self.by_channel.get(name, 0) + count

    def metadata(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed, "sent": self.sent, "failed": self.failed, "unknown": self.unknown,
            "reconciled_unknown": len(self.reconciled_unknown), "requeued_after_crash": self.requeued,
            "released_after_crash": self.released, "settled_by_events": self.settled,
            "closed_lost": self.lost, "resent_after_grace": self.resent,
            "policy_decisions": dict(self.policy.decisions), "sent_by_channel": dict(self.by_channel),
            "workers": self.workers, "workers_lost": list(self.workers_lost),
            "settings_approval": self.settings, **({"held": self.held} if self.held else {}),
        }


def reconcile(wh: Warehouse, as_of: datetime, policies: Policies, report: DispatchReport) -> None:
    """Rows left in 'sending' (the caller holds the dispatch lock: their workers are dead)."""
    report.released += len(wh.fetch_rows("""update send_ledger set state = 'planned', outcome = 'released',
            reason = 'released: claimed by a worker that stopped before its request started',
            attempts = greatest(attempts - 1, 0), worker_id = null, lease_until = null, updated_at = $as_of
        where state = 'sending' and outcome = 'claimed' returning message_key""", {"as_of": as_of}))
    rows = wh.fetch_rows("select distinct channel from send_ledger where state = 'sending' order by channel")
    for (channel,) in rows:
        params = {"as_of": as_of, "channel": channel}
        if policies.dispatch.semantics(channel) == "at_least_once":
            requeued = wh.fetch_rows("""update send_ledger set state = 'planned', reason = 'requeued_after_crash',
                                        outcome = 'released', updated_at = $as_of
                                        where state = 'sending' and channel = $channel
                                        returning message_key""", params)
            report.requeued += len(requeued)
            decision, reason = "requeued", "requeued_after_crash"
            keys = [r[0] for r in requeued]
        else:
            unknown = wh.fetch_rows("""update send_ledger set state = 'unknown', outcome = 'unknown',
                                       reason = 'request started, no result recorded (worker died?); not resent (at_most_once)',
                                       updated_at = $as_of where state = 'sending' and channel = $channel
                                       returning message_key, journey_id, step_id, user_id, channel, attempts""",
                                    params)
            for key, jid, sid, uid, ch, attempts in sorted(unknown):
                report.reconciled_unknown.append({"message_key": key, "journey_id": jid, "step_id": sid,
                                                  "user_id": uid, "channel": ch, "attempts": attempts})
            decision, reason = "unknown", "crash_between_claim_and_record"
            keys = [r[0] for r in unknown]
        if keys:
            decision_key = sha256_hex("l.message_key || '|' || $decision || '|' || cast($as_of as varchar)",
                                      wh.dialect)
            with wh.transaction():
                wh.create_temp_table(RECONCILED, pa.table({"message_key": pa.array(keys, pa.string())}))
                wh.execute(f"""insert into journey_decisions
                    (decision_key, journey_id, user_id, enrolment_id, message_key, step_id, decision, reason,
                     decided_at)
                    select {decision_key}, l.journey_id, l.user_id, l.enrolment_id, l.message_key, l.step_id,
                           $decision, $reason, $as_of
                    from send_ledger l join {RECONCILED} k on k.message_key = l.message_key
                    on conflict do nothing""", {"as_of": as_of, "decision": decision, "reason": reason})
                wh.drop_table(RECONCILED)


MESSAGE_FIELDS = ("message_key", "journey_id", "step_id", "variant", "template", "channel")
# Ledger values staged with each message (StagedLedger, in this order; planned_at also gives `since`).
LEDGER_COLUMNS = ("ledger_attempts", "ledger_content_ref", "ledger_reason", "ledger_sent_at",
                  "ledger_provider_message_id", "ledger_planned_at")
LEDGER_SELECT = ", ".join(f"l.{c.removeprefix('ledger_')} as {c}" for c in LEDGER_COLUMNS)
STAGED = "_dispatch_due"  # the run's due messages with their profile columns, by seq
STAGED_RECOMMENDATIONS = "_dispatch_recommendations"  # their recommendations, by seq
RECONCILED = "_dispatch_reconciled"
RESULTS = "_dispatch_results"
RECOMMENDATION_FIELDS = ("sku", "score", "reason", "rank")
UNKNOWN_REASON = "outcome unknown (no answer after the request was sent); not resent (at_most_once)"


def staged_columns(con: Warehouse | Any, journeys: Mapping[str, Journey]) -> tuple[list[str], bool]:
    """The profile columns dispatch needs (what the templates read, plus user_id, locale and the
    addresses) and whether any template reads `recommendations`."""
    wh = as_warehouse(con)
    names = template_variables(t for j in journeys.values() for t in j.templates.values())
    wanted = names | {"user_id", "locale", *ADDRESS_COLUMN.values()}
    available = PROFILE_COLUMNS
    if wh.table_exists("customer_profile"):
        available = tuple(wh.fetch_arrow("select * from customer_profile where 1 = 0").column_names)
    columns = [c for c in available if c in wanted and c not in (*MESSAGE_FIELDS, "recommendations")]
    return columns, "recommendations" in names and wh.table_exists("customer_recommendations")


@dataclass(frozen=True)
class StagedRun:
    ranges: dict[str, tuple[int, int]]  # channel -> (first seq, last seq) in _dispatch_due
    since: datetime | None  # the oldest planned_at among the staged messages
    with_recommendations: bool = False  # _dispatch_recommendations holds their recommendations
    # The staged rows themselves (seq 1..n in order) and their recommendations by seq, read once at
    # staging: a group's claim is then one UPDATE, with no read of the staged rows per group.
    rows: pa.Table | None = None
    recommendations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def group_rows(self, first: int, last: int) -> list[dict[str, Any]]:
        if self.rows is None:
            return []
        return self.rows.slice(first - 1, last - first + 1).to_pylist()


def _since_filter(since: datetime | None, alias: str = "") -> str:
    return "" if since is None else f"and {alias}planned_at >= $since"


def partition_filter(wh: Warehouse, part: int, parts: int, alias: str = "l.") -> str:
    """This worker's users (parts > 1, PostgreSQL): every message of one user goes to one worker."""
    if parts <= 1:
        return ""
    if wh.dialect != "postgres":
        raise ValueError(f"{parts} dispatch workers need PostgreSQL; {wh.dialect} has one writer")
    return f"and mod(abs(hashtext({alias}user_id)::bigint), {int(parts)}) = {int(part)}"


def stage_due(wh: Warehouse, as_of: datetime, channel_names: list[str], journey_ids: list[str],
              budget: int, columns: list[str], with_recommendations: bool, part: int = 0,
              parts: int = 1) -> StagedRun:
    """Once per run, after policies: the next `budget` due messages in claim order (channel by channel
    in `channel_names` order, then priority, then oldest planned first, then message_key), with
    everything rendering needs, in temp table _dispatch_due (and their recommendations in
    _dispatch_recommendations). Batches then claim, render and record by seq range without reading
    customer_profile or customer_recommendations again."""
    channel_rank = "case l.channel " + " ".join(
        f"when $channel_{i} then {i}" for i in range(len(channel_names))) + " end"
    channels_in, params = values_in("l.channel", "channel", channel_names)
    journeys_in, journey_params = values_in("l.journey_id", "journey", journey_ids)
    profile = "".join(f", p.{quote_ident(c)}" for c in columns)
    staged = wh.fetch_arrow(f"""select * from (
            select row_number() over (order by {channel_rank}, l.priority desc, l.planned_at, l.message_key)
                       as seq,
                   l.message_key, l.journey_id, l.step_id, l.variant, l.template, l.channel,
                   l.user_id as ledger_user_id, {LEDGER_SELECT}{profile}
            from send_ledger l left join customer_profile p on p.user_id = l.user_id
            where l.state = 'planned' and l.send_after <= $as_of and {channels_in} and {journeys_in}
              {partition_filter(wh, part, parts)}
        ) due where seq <= $budget order by seq""",
        {**params, **journey_params, "as_of": as_of, "budget": budget})
    wh.create_temp_table(STAGED, staged)
    wh.drop_table(STAGED_RECOMMENDATIONS)
    if with_recommendations:
        wh.execute(f"""create temp table {STAGED_RECOMMENDATIONS} as
            select d.seq, r.sku, r.score, r.reason, r.rank
            from {STAGED} d join customer_recommendations r on r.user_id = d.ledger_user_id""")
    rows = wh.fetch_rows(f"""select channel, min(seq), max(seq), min(ledger_planned_at) from {STAGED}
                             group by channel""")
    return StagedRun(ranges={channel: (int(lo), int(hi)) for channel, lo, hi, _ in rows},
                     since=min((since for *_, since in rows), default=None),
                     with_recommendations=with_recommendations, rows=staged,
                     recommendations=_staged_recommendations(wh, 1, staged.num_rows) if with_recommendations else {})


@dataclass(frozen=True)
class StagedLedger:
    """The ledger values of a staged message at staging time (while claimed only this run changes
    them): record_results writes final values by message_key without reading the ledger's columns."""
    attempts: int
    content_ref: str | None
    reason: str | None
    sent_at: datetime | None
    provider_message_id: str | None
    planned_at: datetime  # carried to the message (outbox lines show it)


def _split_ledger(row: dict[str, Any]) -> StagedLedger:
    """Take the staged ledger values out of a row (what is left is the template context)."""
    return StagedLedger(*(row.pop(c) for c in LEDGER_COLUMNS))


@dataclass(frozen=True)
class Lease:
    """Who holds a claim and until when (wall clock: leases are about live processes, not the as-of)."""

    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    seconds: float = 600.0
    clock: Callable[[], float] = time.time

    def until(self) -> datetime:
        return datetime.fromtimestamp(self.clock() + self.seconds, UTC)


def claim_staged(wh: Warehouse, as_of: datetime, first: int, last: int, staged: StagedRun,
                 exclusive: bool = True, lease: Lease | None = None,
                 ) -> tuple[list[dict[str, Any]], dict[str, StagedLedger]]:
    """Mark the staged messages first..last (one channel's batch) 'sending' (committed on return) and
    return the claimed ones' staged rows and ledger values.

    Only rows still 'planned' are claimed; on PostgreSQL rows another worker is claiming at this moment
    are skipped (`for update skip locked`), so parallel workers never claim one row twice. With
    `exclusive` (this run holds the dispatch lock) every staged row must still be 'planned': if not, the
    ledger changed under the dispatcher and the run stops (claimed rows become 'unknown' next time).
    `since` (the oldest staged planned_at) lets DuckDB skip the row groups of older ledger history."""
    since = staged.since
    lease = lease or Lease()
    params = {"as_of": as_of, "first": first, "last": last, "since": since, "worker": lease.worker_id,
              "lease_until": lease.until()}
    claimed = {key for (key,) in wh.fetch_rows(f"""update send_ledger
        set state = 'sending', attempts = attempts + 1, updated_at = $as_of, worker_id = $worker,
            lease_until = $lease_until, outcome = 'claimed'
        where message_key in (
            select c.message_key from send_ledger c join {STAGED} d on d.message_key = c.message_key
            where d.seq between $first and $last and c.state = 'planned' {_since_filter(since, "c.")}
            {skip_locked(wh.dialect, "c")})
        returning message_key""", params)}
    rows = staged.group_rows(first, last)  # seq first..last, read once at staging
    if exclusive and len(claimed) != len(rows):
        raise DispatchLedgerChangedError(f"claimed {len(claimed)} of {len(rows)} staged messages (seq {first}..{last}): "
                                         "the ledger changed under the dispatcher; stopping")
    recommendations = staged.recommendations
    rows = sorted((r for r in rows if r["message_key"] in claimed), key=lambda r: r["message_key"])
    for row in rows:
        seq = row.pop("seq")
        del row["ledger_user_id"]
        row["recommendations"] = recommendations.get(seq, [])
    ledger = {row["message_key"]: _split_ledger(row) for row in rows}
    return rows, ledger


def mark_requested(wh: Warehouse, keys: list[str], worker_id: str) -> set[str]:
    """Just before the requests: the claimed rows this worker still holds become outcome 'requested'
    (a row released meanwhile is not sent). After a crash, 'claimed' goes back to planned, 'requested'
    becomes unknown."""
    if not keys:
        return set()
    keys_in, params = values_in("message_key", "key", keys)
    return {key for (key,) in wh.fetch_rows(f"""update send_ledger set outcome = 'requested'
        where {keys_in} and state = 'sending' and worker_id = $worker returning message_key""",
        {**params, "worker": worker_id})}


def _staged_recommendations(wh: Warehouse, first: int, last: int) -> dict[int, list[dict[str, Any]]]:
    """seq -> that message's recommendations ordered by rank (as the template variable shows them)."""
    fields = ", ".join(RECOMMENDATION_FIELDS)
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for row in wh.fetch_arrow(f"""select seq, {fields} from {STAGED_RECOMMENDATIONS}
                                  where seq between $first and $last order by seq, rank, sku""",
                              {"first": first, "last": last}).to_pylist():
        by_seq.setdefault(row.pop("seq"), []).append(row)
    return by_seq


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


def record_results(wh: Warehouse, as_of: datetime, results: list[SendResult],
                   refs: Mapping[str, str], messages: Mapping[str, OutboundMessage],
                   errors: Mapping[str, str], ledger: Mapping[str, StagedLedger], since: datetime | None,
                   worker_id: str) -> None:
    """Record a claimed batch in one set-based UPDATE by message_key: the send results, and render
    failures (`errors`: state 'failed', reason 'render_failed'). Final values come from the staged
    ledger values (attempts as claimed, content_ref/reason/sent_at kept where the result has none), so
    the UPDATE reads no ledger column but state. Dead addresses go to suppression_list."""
    results = [r for r in results if r.message_key in ledger]  # a provider's stray key matches no row
    if not results and not errors:
        return
    keys = [r.message_key for r in results] + list(errors)
    staged = [ledger[k] for k in keys]
    # unknown: the request went out (sent_at is when), the provider may have it: its event settles it
    sent = [r.status in ("sent", "unknown") for r in results]
    table = pa.table({
        "message_key": pa.array(keys, pa.string()),
        "status": pa.array([r.status for r in results] + ["failed"] * len(errors), pa.string()),
        "provider_message_id": pa.array([r.provider_message_id for r in results]
                                        + [s.provider_message_id for s in staged[len(results):]], pa.string()),
        "error": pa.array([r.error for r in results] + list(errors.values()), pa.string()),
        "content_ref": pa.array([refs.get(k) or s.content_ref for k, s in zip(keys, staged, strict=True)], pa.string()),
        # the claim added 1; a result reports the attempts it took (retries)
        "attempts": pa.array([s.attempts + max(r.attempts, 1) for r, s in zip(results, staged, strict=False)]
                             + [s.attempts + 1 for s in staged[len(results):]], pa.int32()),
        "reason": pa.array([UNKNOWN_REASON if r.status == "unknown" else s.reason
                            for r, s in zip(results, staged, strict=False)]
                           + ["render_failed"] * len(errors), pa.string()),
        "sent_at": pa.array([as_of if ok else s.sent_at for ok, s in zip(sent, staged, strict=False)]
                            + [s.sent_at for s in staged[len(results):]], pa.timestamp("us", tz="UTC")),
    })
    params = {"as_of": as_of, "since": since, "worker": worker_id}
    dead = [messages[r.message_key] for r in results if r.address_dead and r.message_key in messages]
    if wh.dialect == "postgres":
        _record_postgres(wh, table, params, dead, as_of)
        return
    with wh.transaction():
        wh.create_temp_table(RESULTS, table)
        # 'unknown' too: a dispatcher that found this worker dead may have marked the row unknown
        # (worker_id stays); the result recorded here is the truth.
        recorded = len(wh.fetch_rows(f"""update send_ledger l set {RECORD_SET}
            from {RESULTS} r where l.message_key = r.message_key and l.state in ('sending', 'unknown')
              and l.worker_id = $worker {_since_filter(since, "l.")}
            returning l.message_key""", params))
        _check_recorded(recorded, len(keys))
        wh.drop_table(RESULTS)
        _suppress_dead(wh, dead, as_of)


RECORD_SET = """state = r.status, outcome = r.status, provider_message_id = r.provider_message_id, error = r.error,
    content_ref = r.content_ref, reason = r.reason, attempts = r.attempts, sent_at = r.sent_at, updated_at = $as_of,
    worker_id = null, lease_until = null"""
RESULT_TYPES = {"message_key": "text", "status": "text", "provider_message_id": "text", "error": "text",
                "content_ref": "text", "attempts": "integer", "reason": "text", "sent_at": "timestamptz"}


def _record_postgres(wh: Warehouse, table: pa.Table, params: dict[str, Any], dead: list[OutboundMessage],
                     as_of: datetime) -> None:
    """PostgreSQL: the group's results in one UPDATE from unnest(arrays) (one round trip: no temp
    table, no explicit transaction; the statement is atomic). A dead address (rare) adds a transaction
    with its suppression."""
    arrays = ", ".join(f"cast($r_{name} as {kind}[])" for name, kind in RESULT_TYPES.items())
    sql = f"""update send_ledger l set {RECORD_SET}
        from unnest({arrays}) as r({", ".join(RESULT_TYPES)})
        where l.message_key = r.message_key and l.state in ('sending', 'unknown')
          and l.worker_id = $worker {_since_filter(params["since"], "l.")}
        returning l.message_key"""
    values = {f"r_{name}": table.column(name).to_pylist() for name in RESULT_TYPES}
    if not dead:
        _check_recorded(len(wh.fetch_rows(sql, {**params, **values})), table.num_rows)
        return
    with wh.transaction():
        _check_recorded(len(wh.fetch_rows(sql, {**params, **values})), table.num_rows)
        _suppress_dead(wh, dead, as_of)


def _check_recorded(recorded: int, expected: int) -> None:
    if recorded != expected:
        raise DispatchLedgerChangedError(f"recorded {recorded} of {expected} results: the ledger changed under "
                                         "the dispatcher; stopping (unrecorded rows stay 'sending' -> 'unknown')")


def _suppress_dead(wh: Warehouse, dead: list[OutboundMessage], as_of: datetime) -> None:
    suppress(wh, ((m.channel, m.to, m.user_id, DEAD_ADDRESS_REASON[m.channel], "journeys") for m in dead), as_of)


def dispatch(con: Warehouse | Any, as_of: datetime, channels: Mapping[str, Channel],
             journeys: Mapping[str, Journey], policies: Policies, lock_path: Path | None = None,
             workers: int = 1, clock: Callable[[], float] = time.time) -> DispatchReport:
    """One dispatch run. Only journeys in `journeys` (the valid ones) are claimed and sent.

    `con`: a Warehouse, or a raw DuckDB connection (wrapped). `lock_path`: the OS dispatch lock beside a
    DuckDB warehouse (PostgreSQL uses an advisory lock). `workers` > 1 needs PostgreSQL: N processes,
    one hash partition of the users each; on DuckDB it must be 1 (the caller says so)."""
    wh = as_warehouse(con)
    if workers > 1 and wh.dialect != "postgres":
        raise ValueError(f"{workers} dispatch workers need PostgreSQL; {wh.dialect} has one writer")
    report = DispatchReport(workers=workers)
    ensure_journey_tables(wh)  # every migration: the ledger (10), the ops tables (1), leases (55)
    with dispatch_lock(lock_path), postgres_dispatch_lock(wh):
        reconcile(wh, as_of, policies, report)
        report.settled = settle_from_events(wh, as_of)
        report.lost, report.resent = close_after_grace(wh, as_of, policies.dispatch)
        report.policy = apply_policies(wh, as_of, policies, journeys)
        # only channels with due messages get a thread, a connection and a staging query per worker
        due = {c for (c,) in wh.fetch_rows("""select distinct channel from send_ledger
                                             where state = 'planned' and send_after <= $as_of""", {"as_of": as_of})}
        plan = SendPlan(as_of, {n: c for n, c in channels.items() if n in due}, dict(journeys), policies,
                        *staged_columns(wh, journeys),
                        lease_s=policies.dispatch.lease.total_seconds(), clock=clock)
        if workers > 1:
            _run_workers(wh, plan, workers, report)
        else:
            report.add(send_partition(wh, plan, Lease(seconds=plan.lease_s, clock=clock)))
    return report


@dataclass(frozen=True)
class SendPlan:
    """What every worker needs to send its partition (inherited by forked workers, never pickled)."""

    as_of: datetime
    channels: dict[str, Channel]
    journeys: dict[str, Journey]
    policies: Policies
    columns: list[str]
    with_recommendations: bool
    lease_s: float = 600.0
    clock: Callable[[], float] = time.time
    part: int = 0
    parts: int = 1


def send_partition(wh: Warehouse, plan: SendPlan, lease: Lease,
                   open_connection: Callable[[], Any] | None = None) -> DispatchReport:
    """Send this worker's partition, channel by channel: in parallel threads (each on a connection of
    its own from `open_connection`) when given, else one after another on `wh` (DuckDB)."""
    names = sorted(plan.channels)
    if open_connection is None or len(names) <= 1:
        report = DispatchReport()
        for name in names:
            report.add(send_channel(wh, plan, name, lease))
        return report

    def one(name: str) -> DispatchReport:
        with open_connection() as own:
            return send_channel(own, plan, name, lease)

    report = DispatchReport()
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="crmflow-channel") as pool:
        for part in pool.map(one, names):
            report.add(part)
    return report


def send_channel(wh: Warehouse, plan: SendPlan, name: str, lease: Lease) -> DispatchReport:
    """Stage one channel's due messages of this partition, then claim/render/send/record them group by
    group, each group at most what the channel has in flight at once."""
    report = DispatchReport()
    channel = plan.channels[name]
    budget = -(-plan.policies.dispatch.max_per_run // plan.parts)
    staged = stage_due(wh, plan.as_of, [name], sorted(plan.journeys), budget, plan.columns,
                       plan.with_recommendations, plan.part, plan.parts)
    try:
        if name not in staged.ranges:
            return report
        group = max(1, min(plan.policies.dispatch.batch_size, getattr(channel, "max_batch", 500)))
        lo, hi = staged.ranges[name]
        for first in range(lo, hi + 1, group):
            wait_while_paused(channel)  # a 429 Retry-After pauses the channel: claim nothing meanwhile
            last = min(first + group - 1, hi)
            rows, ledger = claim_staged(wh, plan.as_of, first, last, staged,
                                        exclusive=wh.dialect == "duckdb", lease=lease)
            if not rows:
                continue
            report.claimed += len(rows)
            messages, refs, errors = render_messages(rows, plan.journeys, plan.policies, ledger, plan.as_of)
            requested = mark_requested(wh, [m.message_key for m in messages], lease.worker_id)
            messages = [m for m in messages if m.message_key in requested]
            results = channel.send_batch(messages) if messages else []
            record_results(wh, plan.as_of, results, refs, {m.message_key: m for m in messages}, errors,
                           ledger, staged.since, lease.worker_id)
            sent = sum(1 for r in results if r.status == "sent")
            unknown = sum(1 for r in results if r.status == "unknown")
            report.sent += sent
            report.unknown += unknown
            report.failed += len(results) - sent - unknown + len(errors)
            report.by_channel[name] = report.by_channel.get(name, 0) + sent
    finally:
        wh.drop_table(STAGED)
        wh.drop_table(STAGED_RECOMMENDATIONS)
    return report


def wait_while_paused(channel: Channel) -> None:
    retrier = getattr(channel, "_retrier", None)
    if retrier is not None:
        retrier.limiter.acquire(0)


def share_limits(channels: Mapping[str, Channel], open_connection: Callable[[], Any],
                 stack: Any) -> None:
    """Replace each HTTP channel's in-process rate limiter with the shared one (dispatch_channels)."""
    from crmflow.journeys.dispatch_limits import SharedLimiter

    for name, channel in channels.items():
        retrier = getattr(channel, "_retrier", None)
        config = getattr(channel, "config", None)
        if retrier is None or config is None:
            continue
        own = stack.enter_context(open_connection())
        retrier.limiter = SharedLimiter(own, name, config.rate_limit_per_s, config.burst)


def _die_with_parent() -> None:
    """Linux: this worker gets SIGKILL when the dispatch that forked it dies, so no orphan keeps sending."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(target: Any, plan: SendPlan, part: int, parts: int, conn: Any) -> None:
    from contextlib import ExitStack

    _die_with_parent()
    plan = SendPlan(**{**plan.__dict__, "part": part, "parts": parts})
    lease = Lease(worker_id=f"{socket.gethostname()}:{os.getpid()}:w{part}", seconds=plan.lease_s, clock=plan.clock)

    def open_connection() -> Any:
        return warehouse_for(target).connect()

    with ExitStack() as stack:
        share_limits(plan.channels, open_connection, stack)
        wh = stack.enter_context(open_connection())
        report = send_partition(wh, plan, lease, open_connection)
    conn.send(report)
    conn.close()


def _run_workers(wh: Warehouse, plan: SendPlan, workers: int, report: DispatchReport) -> None:
    """Fork `workers` processes (PostgreSQL); each sends one hash partition of the users."""
    context = multiprocessing.get_context("fork")
    running = []
    for part in range(workers):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker_main, args=(wh.target, plan, part, workers, send),
                                  name=f"crmflow-dispatch-w{part}", daemon=True)
        process.start()
        send.close()
        running.append((part, process, receive))
    for part, process, receive in running:
        try:
            report.add(receive.recv())
        except EOFError:  # died before reporting (killed, or an error it printed)
            report.workers_lost.append(f"worker {part} (pid {process.pid})")
        process.join()
        if process.exitcode not in (0, None) and not any(f"worker {part} " in w for w in report.workers_lost):
            report.workers_lost.append(f"worker {part} (pid {process.pid}, exit {process.exitcode})")


def worker_pids() -> list[int]:
    """The dispatch workers this process forked and that still run (tests kill them)."""
    return [p.pid for p in multiprocessing.active_children() if p.name.startswith("crmflow-dispatch-w")]

