"""Load provider delivery events (webhook envelopes in the landing folder) into delivery_events and
feed suppression_list.

Per file: read, re-verify every envelope's signature (a tampered or unsigned envelope is rejected and
counted, never loaded). Everything after that is set-based SQL: JSON arrays are unnested by DuckDB,
events are de-duplicated by event id (sg_event_id, or a hash for Twilio), joined to the send ledger
when it exists, and suppressions are derived with one insert per channel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl

import duckdb
import pyarrow as pa

from connectors.channels.base import OutboundMessage, SendResult
from connectors.delivery.envelope import Envelope, EnvelopeError
from connectors.delivery.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    load_sendgrid_public_key,
    verify_sendgrid,
    verify_twilio,
)
from crmflow.warehouse import ensure_ops_tables

log = logging.getLogger("crmflow.delivery_events")

EMAIL_SUPPRESSING_EVENTS = ("bounce", "dropped", "spamreport", "unsubscribe", "group_unsubscribe")
STOP_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
TWILIO_OPT_OUT_ERROR = "21610"


@dataclass(frozen=True)
class DeliveryKeys:
    """Verification secrets (from SENDGRID_WEBHOOK_PUBLIC_KEY and TWILIO_AUTH_TOKEN)."""

    sendgrid_public_key: str | None = None
    twilio_auth_token: str | None = None


@dataclass
class DeliveryLoadStats:
    files_loaded: int = 0
    files_skipped: int = 0  # already loaded (same path and content)
    files_waiting: int = 0  # no verification key configured for their provider: left for later
    envelopes: int = 0
    envelopes_rejected: int = 0
    events_read: int = 0
    events_inserted: int = 0
    duplicates_skipped: int = 0
    suppressions_added: int = 0
    rejections: list[str] = field(default_factory=list)  # "<file>:<line>: <reason>"


@dataclass
class _Batch:
    sendgrid: dict[str, list] = field(default_factory=lambda: {"source_file": [], "received_at": [], "body": []})
    twilio: dict[str, list] = field(default_factory=lambda: {"source_file": [], "received_at": [], "url": [],
                                                              "params": []})
    files: list[tuple[str, str, str, int, int]] = field(default_factory=list)


def _read_envelopes(path: Path, provider: str) -> tuple[list[tuple[int, Envelope | str]], bool]:
    """[(line, envelope or error)], and whether an unterminated last line was left for next time.

    Invalid UTF-8 rejects that envelope (or the whole SendGrid file) with a reason, never the run."""
    data = path.read_bytes()
    if provider == "sendgrid":
        try:
            return [(1, Envelope.from_dict(json.loads(data.decode("utf-8")), f"{path}"))], False
        except UnicodeDecodeError as exc:
            return [(1, f"invalid UTF-8 at byte {exc.start}")], False
        except (ValueError, EnvelopeError) as exc:
            return [(1, str(exc))], False
    lines = data.split(b"\n")
    partial = lines[-1] != b""
    out: list[tuple[int, Envelope | str]] = []
    for number, raw in enumerate(lines[:-1], start=1):  # one envelope per callback request
        if not raw.strip():
            continue
        try:
            out.append((number, Envelope.from_dict(json.loads(raw.decode("utf-8")), f"{path}:{number}")))
        except UnicodeDecodeError as exc:
            out.append((number, f"invalid UTF-8 at byte {exc.start}"))
        except (ValueError, EnvelopeError) as exc:
            out.append((number, str(exc)))
    return out, partial


def _is_json_array(text: str) -> bool:
    try:
        return isinstance(json.loads(text), list)
    except ValueError:
        return False


def _collect(con: duckdb.DuckDBPyConnection, landing_dir: Path, keys: DeliveryKeys,
             stats: DeliveryLoadStats) -> _Batch:
    batch = _Batch()
    sendgrid_key = load_sendgrid_public_key(keys.sendgrid_public_key) if keys.sendgrid_public_key else None
    done = set(con.execute("select path, content_hash from delivery_event_files").fetchall())
    root = landing_dir / "delivery_events"
    for provider, pattern in (("sendgrid", "*.json"), ("twilio", "*.jsonl")):
        files = sorted((root / provider).glob(pattern)) if (root / provider).exists() else []
        for path in files:
            content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            if (str(path), content_hash) in done:
                stats.files_skipped += 1
                continue
            if (provider == "sendgrid" and sendgrid_key is None) or (
                    provider == "twilio" and not keys.twilio_auth_token):
                stats.files_waiting += 1
                continue
            envelopes, partial = _read_envelopes(path, provider)
            rejected = 0
            for line, item in envelopes:
                stats.envelopes += 1
                reason = item if isinstance(item, str) else None
                if reason is None and item.provider != provider:
                    reason = f"envelope provider {item.provider!r} in the {provider} folder"
                if reason is None and provider == "sendgrid":
                    if not verify_sendgrid(sendgrid_key, item.body.encode(), item.header(SENDGRID_SIGNATURE_HEADER),
                                           item.header(SENDGRID_TIMESTAMP_HEADER)):
                        reason = "SendGrid signature does not verify"
                    elif not _is_json_array(item.body):
                        reason = "SendGrid payload is not a JSON array"
                    else:
                        batch.sendgrid["source_file"].append(str(path))
                        batch.sendgrid["received_at"].append(item.received_at)
                        batch.sendgrid["body"].append(item.body)
                elif reason is None:
                    params = parse_qsl(item.body, keep_blank_values=True)
                    if not verify_twilio(keys.twilio_auth_token or "", item.url, params,
                                         item.header(TWILIO_SIGNATURE_HEADER)):
                        reason = "Twilio signature does not verify"
                    else:
                        batch.twilio["source_file"].append(str(path))
                        batch.twilio["received_at"].append(item.received_at)
                        batch.twilio["url"].append(item.url)
                        batch.twilio["params"].append(json.dumps(dict(params)))
                if reason is not None:
                    rejected += 1
                    stats.rejections.append(f"{path}:{line}: {reason}")
            stats.envelopes_rejected += rejected
            if partial:
                # Being appended to right now: load the complete lines, re-read the file next time
                # (events de-duplicate), so do not mark this content as done.
                log.info("%s: last line incomplete, will be re-read", path)
            else:
                batch.files.append((str(path), content_hash, provider, len(envelopes), rejected))
            stats.files_loaded += 1
    return batch


_STAGE_SENDGRID = """
create or replace temp table _delivery_stage as
with events as (
    select source_file, cast(received_at as timestamptz) as received_at,
           unnest(from_json(body, '["JSON"]')) as e
    from _sg_bodies
)
select
    coalesce(e->>'sg_event_id', 'sg:' || sha256(cast(e as varchar))) as event_id,
    'email' as channel, 'sendgrid' as provider,
    e->>'message_key' as message_key,
    e->>'sg_message_id' as provider_message_id,
    e->>'event' as event,
    lower(e->>'email') as address,
    coalesce(e->>'reason', e->>'response') as reason,
    coalesce(to_timestamp(try_cast(e->>'timestamp' as double)), received_at) as occurred_at,
    e->>'url' as url,
    source_file,
    e->>'user_id' as user_id,
    e->>'type' as bounce_type,
    cast(null as varchar) as error_code
from events
"""

_STAGE_TWILIO = """
insert into _delivery_stage
with callbacks as (
    select source_file, cast(received_at as timestamptz) as received_at, url, cast(params as json) as p
    from _tw_params
), typed as (
    select *,
        p->>'MessageStatus' is null as inbound,
        upper(trim(coalesce(p->>'Body', ''))) as keyword
    from callbacks
)
select
    case when inbound then 'tw-in:' || coalesce(p->>'MessageSid', p->>'SmsSid', sha256(cast(p as varchar)))
         else 'tw:' || sha256(concat_ws('|', p->>'MessageSid', p->>'MessageStatus', p->>'ErrorCode')) end,
    'sms', 'twilio',
    nullif(url_decode(regexp_extract(url, '[?&]message_key=([^&#]*)', 1)), ''),
    coalesce(p->>'MessageSid', p->>'SmsSid'),
    case when not inbound then lower(p->>'MessageStatus')
         when list_contains({stop_keywords}, keyword) then 'unsubscribe'
         else 'inbound' end,
    case when inbound then p->>'From' else p->>'To' end,
    coalesce(p->>'ErrorMessage', p->>'ErrorCode'),
    received_at, cast(null as varchar), source_file, cast(null as varchar), cast(null as varchar),
    p->>'ErrorCode'
from typed
"""


def _ledger_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_name = 'send_ledger'"
    ).fetchall()
    return {r[0] for r in rows}


def _join_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Fill message_key (by a unique provider message id) and user_id (by message_key) from the
    ledger. The ledger is another stage's table and may not exist yet: then nothing is joined."""
    columns = _ledger_columns(con)
    if {"message_key", "provider_message_id"} <= columns:
        con.execute("""
            update _delivery_stage s set message_key = l.message_key
            from (select provider_message_id, any_value(message_key) as message_key from send_ledger
                  where provider_message_id is not null group by 1 having count(*) = 1) l
            where s.message_key is null and s.provider_message_id = l.provider_message_id
        """)
    if {"message_key", "user_id"} <= columns:
        con.execute("""
            update _delivery_stage s set user_id = l.user_id
            from send_ledger l where s.user_id is null and s.message_key = l.message_key
        """)


def load_delivery_events(
    con: duckdb.DuckDBPyConnection, landing_dir: str | Path, keys: DeliveryKeys, loaded_at: datetime
) -> DeliveryLoadStats:
    ensure_ops_tables(con)
    stats = DeliveryLoadStats()
    batch = _collect(con, Path(landing_dir), keys, stats)
    if batch.sendgrid["body"] or batch.twilio["params"]:
        con.register("_sg_bodies", pa.table(batch.sendgrid, schema=pa.schema(
            [("source_file", pa.string()), ("received_at", pa.string()), ("body", pa.string())])))
        con.register("_tw_params", pa.table(batch.twilio, schema=pa.schema(
            [("source_file", pa.string()), ("received_at", pa.string()), ("url", pa.string()),
             ("params", pa.string())])))
        con.execute(_STAGE_SENDGRID)
        con.execute(_STAGE_TWILIO.format(stop_keywords=list(STOP_KEYWORDS)))
        con.unregister("_sg_bodies")
        con.unregister("_tw_params")
        bad = con.execute("select source_file, count(*) from _delivery_stage where event is null group by 1").fetchall()
        stats.rejections.extend(f"{f}: {n} event(s) without an 'event' field" for f, n in bad)
        con.execute("delete from _delivery_stage where event is null")
        _join_ledger(con)
        stats.events_read = con.execute("select count(*) from _delivery_stage").fetchall()[0][0]
        before = con.execute("select count(*) from delivery_events").fetchall()[0][0]
        con.execute("""
            insert into delivery_events by name
            select event_id, channel, provider, message_key, provider_message_id, event, address, reason,
                   occurred_at, url, source_file as _source_file, ? as _loaded_at, user_id
            from _delivery_stage
            qualify row_number() over (partition by event_id order by occurred_at, source_file) = 1
            on conflict do nothing
        """, [loaded_at])
        stats.events_inserted = con.execute("select count(*) from delivery_events").fetchall()[0][0] - before
        stats.duplicates_skipped = stats.events_read - stats.events_inserted
        stats.suppressions_added = _suppress_from_stage(con)
        con.execute("drop table _delivery_stage")
    if batch.files:
        con.executemany(
            "insert or replace into delivery_event_files values (?, ?, ?, ?, ?, "
            "(select count(*) from delivery_events where _source_file = ?), ?)",
            [(p, h, prov, n, r, p, loaded_at) for p, h, prov, n, r in batch.files],
        )
    return stats


def _suppress_from_stage(con: duckdb.DuckDBPyConnection) -> int:
    before = con.execute("select count(*) from suppression_list").fetchall()[0][0]
    con.execute(f"""
        insert into suppression_list by name
        select channel, address, user_id, reason, provider as source, occurred_at as suppressed_at
        from (
            select 'email' as channel, address, user_id, provider, occurred_at,
                   case event when 'group_unsubscribe' then 'unsubscribe' else event end as reason
            from _delivery_stage
            where provider = 'sendgrid' and event in {EMAIL_SUPPRESSING_EVENTS}
              -- 'blocked' bounces are temporary (IP reputation, throttling): not the address's fault
              and not (event = 'bounce' and coalesce(bounce_type, '') = 'blocked')
            union all
            select 'sms', address, user_id, provider, occurred_at, 'unsubscribe'
            from _delivery_stage
            where provider = 'twilio' and (error_code = '{TWILIO_OPT_OUT_ERROR}' or event = 'unsubscribe')
        )
        where address is not null and address <> ''
        qualify row_number() over (partition by channel, address order by suppressed_at) = 1
        on conflict do nothing
    """)
    return con.execute("select count(*) from suppression_list").fetchall()[0][0] - before


# ---- dispatch path: dead addresses reported by the channels ---------------------------------------
_DEAD_REASON = {"push": ("dead_token", "fcm"), "email": ("bounce", "sendgrid"), "sms": ("bounce", "twilio")}


def record_dead_addresses(
    con: duckdb.DuckDBPyConnection,
    messages: Sequence[OutboundMessage],
    results: Sequence[SendResult],
    at: datetime,
) -> int:
    """Suppress every address a channel reported dead (SendResult.address_dead): a push token FCM
    calls UNREGISTERED becomes suppression_list(channel=push, reason=dead_token). For the dispatcher
    to call after recording results. Returns the number of new suppressions."""
    ensure_ops_tables(con)
    by_key = {m.message_key: m for m in messages}
    rows = [(by_key[r.message_key], r) for r in results if r.address_dead and r.message_key in by_key]
    return suppress(con, ((m.channel, m.to, m.user_id, *_DEAD_REASON.get(m.channel, ("manual", "manual")))
                          for m, _ in rows), at)


def suppress(con: duckdb.DuckDBPyConnection, entries: Iterable[tuple[str, str, str | None, str, str]],
             at: datetime) -> int:
    """Insert (channel, address, user_id, reason, source) suppressions; existing ones are kept."""
    entries = list(entries)
    if not entries:
        return 0
    channel, address, user_id, reason, source = (list(col) for col in zip(*entries, strict=True))
    table = pa.table({"channel": channel, "address": [a.lower() if c == "email" else a
                                                       for c, a in zip(channel, address, strict=True)],
                      "user_id": user_id, "reason": reason, "source": source})
    before = con.execute("select count(*) from suppression_list").fetchall()[0][0]
    con.register("_new_suppressions", table)
    con.execute("""
        insert into suppression_list by name
        select channel, address, user_id, reason, source, ? as suppressed_at from _new_suppressions
        qualify row_number() over (partition by channel, address) = 1
        on conflict do nothing
    """, [at])
    con.unregister("_new_suppressions")
    return con.execute("select count(*) from suppression_list").fetchall()[0][0] - before
