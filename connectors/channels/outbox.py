"""The outbox channel: one JSON line per message in <outbox>/<channel>.jsonl (the OutboundMessage
fields; planned_at and sent_at as ISO-8601 UTC).

It is the default whenever a channel has no credentials, so the demo and the tests run offline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from connectors.channels.base import OutboundMessage, SendResult

TIMESTAMP_FIELDS = ("planned_at", "sent_at")
PLAIN_FIELDS = tuple(f.name for f in fields(OutboundMessage) if f.name not in TIMESTAMP_FIELDS)


def iso_utc(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, e.g. 2026-03-01T08:00:00Z (a naive value is taken as UTC)."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def outbox_line(message: OutboundMessage) -> str:
    # A shallow dict per message (dataclasses.asdict deep-copies: ~1/3 of the outbox's cost).
    row = {n: getattr(message, n) for n in PLAIN_FIELDS}
    row.update((n, iso_utc(getattr(message, n))) for n in TIMESTAMP_FIELDS)
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


class OutboxChannel:
    max_batch = 1000

    def __init__(self, name: str, outbox_dir: str | Path):
        self.name = name
        self.path = Path(outbox_dir) / f"{name}.jsonl"

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(outbox_line(m) for m in messages)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        return [
            SendResult(message_key=m.message_key, status="sent", provider_message_id=f"outbox:{m.message_key}")
            for m in messages
        ]
