"""The outbox channel: one JSON line per message in <outbox>/<channel>.jsonl.

It is the default whenever a channel has no credentials, so the demo and the tests run offline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from connectors.channels.base import OutboundMessage, SendResult


class OutboxChannel:
    max_batch = 1000

    def __init__(self, name: str, outbox_dir: str | Path):
        self.name = name
        self.path = Path(outbox_dir) / f"{name}.jsonl"

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A shallow dict per message (dataclasses.asdict deep-copies: ~1/3 of the outbox's cost).
        names = [f.name for f in fields(OutboundMessage)]
        lines = "".join(json.dumps({n: getattr(m, n) for n in names}, ensure_ascii=False, sort_keys=True) + "\n"
                        for m in messages)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        return [
            SendResult(message_key=m.message_key, status="sent", provider_message_id=f"outbox:{m.message_key}")
            for m in messages
        ]
