"""The landing envelope: a received webhook request kept verbatim (raw body + signature headers + the
URL it was posted to), so the signature can be verified again when the file is loaded.

    <landing>/delivery_events/sendgrid/<received>-<sha12>.json   one envelope (one request) per file
    <landing>/delivery_events/twilio/<YYYYmmddHH>-<pid>.jsonl     one envelope per line

    {"envelope": "crmflow.webhook/v1", "provider": "sendgrid" | "twilio",
     "received_at": "2026-11-22T10:00:00+00:00", "url": "https://hooks.example.com/sendgrid/events",
     "headers": {"X-Twilio-Email-Event-Webhook-Signature": "...", ...}, "body": "<raw body, utf-8>"}
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ENVELOPE_VERSION = "crmflow.webhook/v1"
PROVIDERS = ("sendgrid", "twilio")
# Only these headers are kept: they carry what verification needs, nothing else (no auth headers).
KEPT_HEADERS = (
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "X-Twilio-Signature",
    "Content-Type",
)


class EnvelopeError(ValueError):
    pass


@dataclass(frozen=True)
class Envelope:
    provider: str
    received_at: str
    url: str
    headers: dict[str, str]
    body: str

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def to_json(self) -> str:
        return json.dumps({"envelope": ENVELOPE_VERSION, "provider": self.provider,
                           "received_at": self.received_at, "url": self.url, "headers": self.headers,
                           "body": self.body}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Envelope:
        if not isinstance(data, dict):
            raise EnvelopeError(f"{where}: envelope is not a JSON object")
        if data.get("envelope") != ENVELOPE_VERSION:
            raise EnvelopeError(f"{where}: field 'envelope' must be {ENVELOPE_VERSION!r}")
        for name in ("provider", "received_at", "url", "body"):
            if not isinstance(data.get(name), str):
                raise EnvelopeError(f"{where}: field {name!r} missing or not a string")
        if data["provider"] not in PROVIDERS:
            raise EnvelopeError(f"{where}: field 'provider' must be one of {PROVIDERS}")
        headers = data.get("headers")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise EnvelopeError(f"{where}: field 'headers' must be an object of strings")
        try:
            datetime.fromisoformat(data["received_at"])
        except ValueError as exc:
            raise EnvelopeError(f"{where}: field 'received_at' is not ISO-8601") from exc
        return cls(data["provider"], data["received_at"], data["url"], dict(headers), data["body"])


def keep_headers(headers: dict[str, str]) -> dict[str, str]:
    wanted = {h.lower(): h for h in KEPT_HEADERS}
    return {wanted[k.lower()]: v for k, v in headers.items() if k.lower() in wanted}


class EnvelopeWriter:
    """Writes accepted requests into the landing folder. SendGrid: a new file per request, written
    to a temp name and renamed (atomic). Twilio: one line per callback appended to an hourly file
    with a single write, so a reader sees whole lines (it ignores an unterminated last line)."""

    def __init__(self, landing_dir: str | Path):
        self.root = Path(landing_dir) / "delivery_events"
        self._lock = threading.Lock()

    def write(self, envelope: Envelope, received: datetime) -> Path:
        folder = self.root / envelope.provider
        folder.mkdir(parents=True, exist_ok=True)
        text = envelope.to_json()
        if envelope.provider == "sendgrid":
            digest = hashlib.sha256(text.encode()).hexdigest()[:12]
            path = folder / f"{received.strftime('%Y%m%dT%H%M%S%f')}-{digest}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
            return path
        path = folder / f"{received.strftime('%Y%m%d%H')}-{os.getpid()}.jsonl"
        with self._lock, path.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        return path
