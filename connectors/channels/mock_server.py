"""A scriptable local provider (SendGrid / Twilio / FCM / webhook endpoints) for tests, `channels
check` demos and bench/bench_dispatch.py. Binds 127.0.0.1 only.

Each request takes the next scripted action (default "ok"): ok, status (any code, body, headers;
429 with Retry-After, 5xx), reset (drop the connection with a TCP RST before accepting), hang
(accept, answer only after a delay: a client timeout while the message WAS accepted), drop (accept,
then RST without answering: accept-then-drop) or stall (wait, then close without accepting: a timeout
while the message was NOT accepted). The server counts accepted messages per message key, so tests
can prove "no duplicate delivery", and keeps each accepted message (`accepted_log`) so it can emit the
provider's delivery events for them (`write_delivery_events`: signed SendGrid Event Webhook batches
with custom_args.message_key, Twilio status callbacks with ?message_key= on the StatusCallback URL),
as envelopes in a landing folder, as crmflow's webhook receiver writes them.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit


@dataclass(frozen=True)
class Action:
    kind: str = "ok"  # ok | status | reset | hang | drop | stall
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @staticmethod
    def error(status: int, body: Any = None, **headers: str) -> Action:
        return Action("status", status, body, {k.replace("_", "-"): v for k, v in headers.items()})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


class MockProvider:
    def __init__(self, expected_auth: str | None = None, record_bodies: bool = True):
        self.expected_auth = expected_auth
        self.record_bodies = record_bodies
        self.script: deque[Action] = deque()
        self.requests: list[Recorded] = []
        self.accepted: Counter[str] = Counter()  # message key -> times accepted
        # (api, message key, provider message id, StatusCallback URL) per accepted message, in order
        self.accepted_log: list[tuple[str, str, str, str]] = []
        self._emitted = 0  # accepted_log entries already written as delivery events
        self.request_count = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def push(self, *actions: Action) -> None:
        self.script.extend(actions)

    def __enter__(self) -> MockProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # ---- provider behaviour ------------------------------------------------------------------
    def _accept(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
        route = urlsplit(path).path
        if route == "/v3/mail/send":
            data = json.loads(body)
            keys = [p.get("custom_args", {}).get("message_key", "") for p in data.get("personalizations", [])]
            message_id = f"sgmsg{next(self._ids)}"
            self._count(keys, "sendgrid", message_id)
            status = 200 if data.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") else 202
            return status, None, {"X-Message-Id": message_id}
        if route.endswith("/Messages.json"):
            form = parse_qs(body.decode())
            callback = form.get("StatusCallback", [""])[0]
            key = parse_qs(urlsplit(callback).query).get("message_key", [form.get("To", [""])[0]])[0]
            sid = f"SM{next(self._ids):032x}"
            self._count([key], "twilio", sid, callback)
            return 201, {"sid": sid, "status": "queued"}, {}
        if route.endswith("/messages:send"):
            data = json.loads(body)
            project = route.split("/")[3]
            if not data.get("validateOnly"):
                self._count([data["message"].get("data", {}).get("message_key", "")], "fcm")
            return 200, {"name": f"projects/{project}/messages/{next(self._ids)}"}, {}
        if method == "GET" and (route == "/v3/scopes" or route.startswith("/2010-04-01/Accounts/")):
            return 200, {"scopes": ["mail.send"]} if "scopes" in route else {"status": "active"}, {}
        if method == "POST":  # generic webhook receiver
            self._count([headers.get("X-Crmflow-Message-Key", "")])
            return 200, {"ok": True}, {"X-Request-Id": f"wh{next(self._ids)}"}
        return 200, None, {}

    def _count(self, keys: list[str], api: str = "other", message_id: str = "", callback: str = "") -> None:
        with self._lock:
            self.accepted.update(keys)
            self.accepted_log.extend((api, key, message_id, callback) for key in keys)

    def write_delivery_events(self, landing_dir: str | Path, received_at: datetime,
                              sendgrid_private_key: Any = None, twilio_auth_token: str | None = None,
                              event: str = "delivered") -> int:
        """Write the delivery events of the messages accepted since the last call (SendGrid: one signed
        Event Webhook batch; Twilio: one signed status callback each) as landing envelopes; returns
        how many. FCM sends no events: its response is the only outcome."""
        from connectors.delivery.envelope import Envelope, EnvelopeWriter
        from connectors.delivery.signatures import (
            SENDGRID_SIGNATURE_HEADER,
            SENDGRID_TIMESTAMP_HEADER,
            TWILIO_SIGNATURE_HEADER,
            sign_sendgrid,
            twilio_signature,
        )

        with self._lock:
            new = self.accepted_log[self._emitted:]
            self._emitted = len(self.accepted_log)
        writer = EnvelopeWriter(Path(landing_dir))
        stamp = int(received_at.timestamp())
        emails = [(key, mid) for api, key, mid, _ in new if api == "sendgrid"]
        if emails and sendgrid_private_key is not None:
            body = json.dumps([{"email": f"{key[:12]}@example.org", "event": event, "message_key": key,
                                "sg_event_id": f"mock-{mid}-{key[:16]}-{event}", "sg_message_id": mid,
                                "timestamp": stamp} for key, mid in emails])
            headers = {SENDGRID_SIGNATURE_HEADER: sign_sendgrid(sendgrid_private_key, body.encode(), str(stamp)),
                       SENDGRID_TIMESTAMP_HEADER: str(stamp), "Content-Type": "application/json"}
            writer.write(Envelope("sendgrid", received_at.isoformat(), "https://hooks.example.com/sendgrid/events",
                                  headers, body), received_at)
        written = len(emails) if sendgrid_private_key is not None else 0
        for api, _key, sid, callback in new:
            if api != "twilio" or not callback or twilio_auth_token is None:
                continue
            params = {"MessageSid": sid, "MessageStatus": event, "To": "+15005550006"}
            signature = twilio_signature(twilio_auth_token, callback, list(params.items()))
            writer.write(Envelope("twilio", received_at.isoformat(), callback,
                                  {TWILIO_SIGNATURE_HEADER: signature}, urlencode(params)), received_at)
            written += 1
        return written

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment, no Nagle: avoids 40 ms delayed-ACK stalls on keep-alive.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

            def _reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
                raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if raw:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The client died mid-request (e.g. SIGKILL): a real provider never sees a
                    # complete request, so nothing is accepted or counted.
                    self.close_connection = True
                    return
                headers = dict(self.headers.items())
                with provider._lock:
                    provider.request_count += 1
                    if provider.record_bodies:
                        provider.requests.append(Recorded(self.command, self.path, headers, body))
                    action = provider.script.popleft() if provider.script else Action()
                if action.kind == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer", no response.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if action.kind == "status":
                    self._reply(action.status, action.body, action.headers)
                    return
                if provider.expected_auth is not None and headers.get("Authorization") != provider.expected_auth:
                    self._reply(401, {"errors": [{"message": "authorization required"}],
                                      "code": 20003, "message": "Authenticate",
                                      "error": {"code": 401, "status": "UNAUTHENTICATED",
                                                "message": "invalid credentials"}}, {})
                    return
                if action.kind == "stall":  # never accepted: the client times out
                    time.sleep(action.delay_s)
                    self.close_connection = True
                    return
                if action.kind == "hang":
                    time.sleep(action.delay_s)
                status, reply, extra = provider._accept(self.command, self.path, headers, body)
                if action.kind == "drop":  # accepted, then the connection dies before the answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                try:
                    self._reply(status, reply, extra)
                except OSError:
                    pass  # the client gave up (timeout): the message was accepted all the same

            do_POST = _handle
            do_GET = _handle
            do_HEAD = _handle

            def finish(self) -> None:
                try:
                    super().finish()
                except (OSError, ValueError):
                    pass

        return Handler
