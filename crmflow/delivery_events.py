"""Load provider delivery events (webhook envelopes in the landing folder) into delivery_events and
feed suppression_list.

Per file: read, re-verify every envelope's signature (a tampered or unsigned envelope is rejected and
counted, never loaded). The verified payloads (already parsed to be verified) become one staged row
per event; everything after that is set-based portable SQL through the warehouse interface (DuckDB
and PostgreSQL): events are de-duplicated by event id (sg_event_id, or a sha256 of the event for
SendGrid events without one / of sid|status|error code for Twilio), joined to the send ledger when it
exists, and suppressions are derived with one insert; events carrying a message key settle the
ledger's unknown rows (crmflow/journeys/settle.py). One transaction per load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pyarrow as pa

from connectors.delivery.envelope import Envelope, EnvelopeError
from connectors.delivery.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    load_sendgrid_public_key,
    verify_sendgrid,
    verify_twilio,
)
from crmflow.journeys.settle import settle_from_events
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

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
    ledger_settled: int = 0  # send_ledger rows an event settled as sent (crmflow/journeys/settle.py)
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


def _collect(wh: Warehouse, landing_dir: Path, keys: DeliveryKeys,
             stats: DeliveryLoadStats) -> _Batch:
    batch = _Batch()
    sendgrid_key = load_sendgrid_public_key(keys.sendgrid_public_key) if keys.sendgrid_public_key else None
    done = set(wh.fetch_rows("select path, content_hash from delivery_event_files"))
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


# Staging columns (in this order): one row per event, built in Python from the verified envelopes
# (they are parsed to be verified anyway), so the SQL after it is the same on every engine.
STAGE_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("channel", pa.string()), ("provider", pa.string()), ("message_key", pa.string()),
    ("provider_message_id", pa.string()), ("event", pa.string()), ("address", pa.string()),
    ("reason", pa.string()), ("occurred_at", pa.timestamp("us", tz="UTC")), ("url", pa.string()),
    ("source_file", pa.string()), ("user_id", pa.string()), ("bounce_type", pa.string()),
    ("error_code", pa.string()),
])
STAGE = "_delivery_stage"
_MESSAGE_KEY_IN_URL = re.compile(r"[?&]message_key=([^&#]*)")


def _text(value: object) -> str | None:
    """A JSON value as SQL's `->>` gives it: strings as they are, anything else as its JSON text."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _epoch_or(value: object, fallback: datetime) -> datetime:
    if isinstance(value, bool):
        return fallback
    try:
        return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _received(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sendgrid_rows(source_file: str, received_at: str, body: str) -> Iterator[tuple]:
    received = _received(received_at)
    for event in json.loads(body):
        e = event if isinstance(event, dict) else {}
        get = lambda key: _text(e.get(key))  # noqa: E731 - one field of this event as text
        email = get("email")
        yield (get("sg_event_id") or "sg:" + _sha256(_text(event) or "null"), "email", "sendgrid",
               get("message_key"), get("sg_message_id"), get("event"), email.lower() if email else email,
               get("reason") or get("response"), _epoch_or(e.get("timestamp"), received), get("url"),
               source_file, get("user_id"), get("type"), None)


def _twilio_row(source_file: str, received_at: str, url: str, params: dict[str, str]) -> tuple:
    get = params.get
    inbound = get("MessageStatus") is None
    keyword = (get("Body") or "").strip().upper()
    if inbound:
        event_id = "tw-in:" + (get("MessageSid") or get("SmsSid") or _sha256(json.dumps(params)))
        event = "unsubscribe" if keyword in STOP_KEYWORDS else "inbound"
    else:
        parts = (get("MessageSid"), get("MessageStatus"), get("ErrorCode"))
        event_id = "tw:" + _sha256("|".join(p for p in parts if p is not None))
        event = get("MessageStatus", "").lower()
    found = _MESSAGE_KEY_IN_URL.search(url or "")
    return (event_id, "sms", "twilio", (unquote_plus(found.group(1)) if found else "") or None,
            get("MessageSid") or get("SmsSid"), event, get("From") if inbound else get("To"),
            get("ErrorMessage") or get("ErrorCode"), _received(received_at), None, source_file, None, None,
            get("ErrorCode"))


def _stage_rows(batch: _Batch) -> list[tuple]:
    sendgrid = batch.sendgrid
    rows = [row for file, received, body in zip(sendgrid["source_file"], sendgrid["received_at"],
                                                   sendgrid["body"], strict=True)
            for row in _sendgrid_rows(file, received, body)]
    twilio = batch.twilio
    rows += [_twilio_row(file, received, url, json.loads(params)) for file, received, url, params
             in zip(twilio["source_file"], twilio["received_at"], twilio["url"], twilio["params"], strict=True)]
    return rows


def _ledger_columns(wh: Warehouse) -> set[str]:
    rows = wh.fetch_rows("select column_name from information_schema.columns where table_name = 'send_ledger'")
    return {r[0] for r in rows}


def _join_ledger(wh: Warehouse) -> None:
    """Fill message_key (by a unique provider message id) and user_id (by message_key) from the
    ledger. The ledger is another stage's table and may not exist yet: then nothing is joined."""
    columns = _ledger_columns(wh)
    if {"message_key", "provider_message_id"} <= columns:
        wh.execute(f"""
            update {STAGE} s set message_key = l.message_key
            from (select provider_message_id, min(message_key) as message_key from send_ledger
                  where provider_message_id is not null group by provider_message_id having count(*) = 1) l
            where s.message_key is null and s.provider_message_id = l.provider_message_id
        """)
    if {"message_key", "user_id"} <= columns:
        wh.execute(f"""
            update {STAGE} s set user_id = l.user_id
            from send_ledger l where s.user_id is null and s.message_key = l.message_key
        """)


def load_delivery_events(
    con: Warehouse | Any, landing_dir: str | Path, keys: DeliveryKeys, loaded_at: datetime
) -> DeliveryLoadStats:
    """Load the new envelope files; `con` is a Warehouse or a raw DuckDB connection (wrapped)."""
    wh = as_warehouse(con)
    apply_migrations(wh)
    stats = DeliveryLoadStats()
    batch = _collect(wh, Path(landing_dir), keys, stats)
    rows = _stage_rows(batch)
    with wh.transaction():
        if rows:
            _load_stage(wh, rows, loaded_at, stats)
        if batch.files:
            _record_files(wh, batch.files, loaded_at)
        # Events carrying a message key settle unknown rows (and correct lost/failed ones) now.
        stats.ledger_settled = settle_from_events(wh, loaded_at)
    return stats


def _load_stage(wh: Warehouse, rows: list[tuple], loaded_at: datetime, stats: DeliveryLoadStats) -> None:
    """Staged events -> delivery_events (first copy of each event id wins) and suppression_list."""
    event_at = STAGE_SCHEMA.names.index("event")
    without_event: dict[str, int] = {}
    for row in rows:
        if row[event_at] is None:
            without_event[row[10]] = without_event.get(row[10], 0) + 1
    stats.rejections.extend(f"{f}: {n} event(s) without an 'event' field" for f, n in sorted(without_event.items()))
    rows = [row for row in rows if row[event_at] is not None]
    wh.create_temp_table(STAGE, pa.Table.from_pylist(
        [dict(zip(STAGE_SCHEMA.names, row, strict=True)) for row in rows], schema=STAGE_SCHEMA))
    _join_ledger(wh)
    stats.events_read = len(rows)
    stats.events_inserted = len(wh.fetch_rows(f"""
        insert into delivery_events (event_id, channel, provider, message_key, provider_message_id, event,
                                     address, reason, occurred_at, url, _source_file, _loaded_at, user_id)
        select event_id, channel, provider, message_key, provider_message_id, event, address, reason,
               occurred_at, url, source_file, $loaded_at, user_id
        from (select *, row_number() over (partition by event_id order by occurred_at, source_file) as copy_no
              from {STAGE}) s
        where copy_no = 1
        on conflict do nothing
        returning event_id""", {"loaded_at": loaded_at}))
    stats.duplicates_skipped = stats.events_read - stats.events_inserted
    stats.suppressions_added = _suppress_from_stage(wh)
    wh.drop_table(STAGE)


def _record_files(wh: Warehouse, files: list[tuple[str, str, str, int, int]], loaded_at: datetime) -> None:
    """One delivery_event_files row per completely read file (replacing an earlier row of it)."""
    paths = sorted({path for path, *_ in files})
    placeholders = {f"path_{i}": path for i, path in enumerate(paths)}
    counts = dict(wh.fetch_rows(
        f"""select _source_file, count(*) from delivery_events
            where _source_file in ({", ".join("$" + p for p in placeholders)}) group by _source_file""",
        placeholders))
    wh.upsert("delivery_event_files", pa.table({
        "path": pa.array([f[0] for f in files], pa.string()),
        "content_hash": pa.array([f[1] for f in files], pa.string()),
        "provider": pa.array([f[2] for f in files], pa.string()),
        "envelopes": pa.array([f[3] for f in files], pa.int64()),
        "envelopes_rejected": pa.array([f[4] for f in files], pa.int64()),
        "events": pa.array([counts.get(f[0], 0) for f in files], pa.int64()),
        "loaded_at": pa.array([loaded_at] * len(files), pa.timestamp("us", tz="UTC")),
    }), ["path", "content_hash"])


def _suppress_from_stage(wh: Warehouse) -> int:
    return len(wh.fetch_rows(f"""
        insert into suppression_list (channel, address, user_id, reason, source, suppressed_at)
        select channel, address, user_id, reason, provider, occurred_at
        from (
            select *, row_number() over (partition by channel, address
                                         order by occurred_at, reason, user_id nulls last) as copy_no
            from (
                select 'email' as channel, address, user_id, provider, occurred_at,
                       case event when 'group_unsubscribe' then 'unsubscribe' else event end as reason
                from {STAGE}
                where provider = 'sendgrid' and event in {EMAIL_SUPPRESSING_EVENTS}
                  -- 'blocked' bounces are temporary (IP reputation, throttling): not the address's fault
                  and not (event = 'bounce' and coalesce(bounce_type, '') = 'blocked')
                union all
                select 'sms', address, user_id, provider, occurred_at, 'unsubscribe'
                from {STAGE}
                where provider = 'twilio' and (error_code = '{TWILIO_OPT_OUT_ERROR}' or event = 'unsubscribe')
            ) suppressing
            where address is not null and address <> ''
        ) s
        where copy_no = 1
        on conflict do nothing
        returning channel"""))


# ---- dead addresses reported by the channels at send time ----------------------------------------
# The suppression reason per channel when a provider says the address is dead (SendResult.address_dead;
# dispatch suppresses it): the one definition. SMS is Twilio's 'undelivered', the status its callbacks
# report for the same address, so a dead number reads the same whichever path saw it first.
DEAD_ADDRESS_REASON = {"email": "bounce", "sms": "undelivered", "push": "dead_token", "webhook": "dead_endpoint"}


def suppress(con: Warehouse | Any, entries: Iterable[tuple[str, str, str | None, str, str]],
             at: datetime) -> int:
    """Insert (channel, address, user_id, reason, source) suppressions; existing ones are kept, and of
    several entries for one (channel, address) the first wins. Returns the number added."""
    first: dict[tuple[str, str], tuple[str | None, str, str]] = {}
    for channel, address, user_id, reason, source in entries:
        address = address.lower() if channel == "email" else address
        first.setdefault((channel, address), (user_id, reason, source))
    if not first:
        return 0
    table = pa.table({
        "channel": pa.array([c for c, _ in first], pa.string()),
        "address": pa.array([a for _, a in first], pa.string()),
        "user_id": pa.array([v[0] for v in first.values()], pa.string()),
        "reason": pa.array([v[1] for v in first.values()], pa.string()),
        "source": pa.array([v[2] for v in first.values()], pa.string()),
        "suppressed_at": pa.array([at] * len(first), pa.timestamp("us", tz="UTC")),
    })
    return as_warehouse(con).insert_new_returning("suppression_list", table, ["channel", "address"]).num_rows
