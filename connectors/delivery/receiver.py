"""A small webhook receiver (`crmflow webhooks serve`): verifies SendGrid Event Webhook and Twilio
callback signatures and writes accepted requests into the landing folder as envelopes.

    POST /sendgrid/events   SendGrid Event Webhook (signed; ECDSA)
    POST /twilio/status     Twilio message status callbacks (X-Twilio-Signature)
    POST /twilio/inbound    Twilio inbound SMS (STOP keywords become sms suppressions at load time)

A request that is unsigned, tampered or for a provider without a configured key gets 403 and is not
stored. Binds 127.0.0.1 unless told otherwise; put a TLS-terminating proxy in front in production and
pass its public URL (Twilio signs the URL it called).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.delivery.envelope import Envelope, EnvelopeWriter, keep_headers
from connectors.delivery.signatures import (
    SENDGRID_SIGNATURE_HEADER,
    SENDGRID_TIMESTAMP_HEADER,
    TWILIO_SIGNATURE_HEADER,
    load_sendgrid_public_key,
    verify_sendgrid,
    verify_twilio,
)

log = logging.getLogger("crmflow.webhooks")
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ReceiverConfig:
    landing_dir: Path
    public_base_url: str | None = None  # e.g. https://hooks.example.com; default http://host:port
    sendgrid_public_key: str | None = None
    twilio_auth_token: str | None = None


class WebhookReceiver:
    def __init__(self, config: ReceiverConfig, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.config = config
        self.clock = clock
        self.writer = EnvelopeWriter(config.landing_dir)
        self._sendgrid_key = load_sendgrid_public_key(config.sendgrid_public_key) \
            if config.sendgrid_public_key else None
        self.server = ThreadingHTTPServer((host, port), self._handler_class())
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def public_url(self, path: str) -> str:
        return (self.config.public_base_url or self.url).rstrip("/") + path

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    # ---- request handling ------------------------------------------------------------------
    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """Return (status, reason). Pure enough to unit-test without sockets."""
        route = urlsplit(path).path
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, "body is not UTF-8"
        lowered = {k.lower(): v for k, v in headers.items()}
        if route == "/sendgrid/events":
            if self._sendgrid_key is None:
                return 403, "SendGrid verification key not configured"
            ok = verify_sendgrid(self._sendgrid_key, body, lowered.get(SENDGRID_SIGNATURE_HEADER.lower()),
                                 lowered.get(SENDGRID_TIMESTAMP_HEADER.lower()))
            if not ok:
                return 403, "bad or missing SendGrid signature"
            try:
                if not isinstance(json.loads(text), list):
                    return 400, "SendGrid payload is not a JSON array"
            except ValueError:
                return 400, "SendGrid payload is not JSON"
            provider = "sendgrid"
        elif route in ("/twilio/status", "/twilio/inbound"):
            if not self.config.twilio_auth_token:
                return 403, "Twilio auth token not configured"
            params = parse_qsl(text, keep_blank_values=True)
            if not verify_twilio(self.config.twilio_auth_token, self.public_url(path), params,
                                 lowered.get(TWILIO_SIGNATURE_HEADER.lower())):
                return 403, "bad or missing Twilio signature"
            provider = "twilio"
        else:
            return 404, "unknown path"
        received = self.clock()
        envelope = Envelope(provider, received.isoformat(), self.public_url(path), keep_headers(headers), text)
        self.writer.write(envelope, received)
        return 200, "stored"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None  # request lines can carry query strings; we log our own masked line

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._reply(413, "payload too large")
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                status, reason = receiver.handle(self.path, dict(self.headers.items()), body)
                log.info("webhook %s -> %d %s", urlsplit(self.path).path, status, reason)
                self._reply(status, reason)

            def _reply(self, status: int, reason: str) -> None:
                raw = json.dumps({"status": status, "detail": reason}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler
