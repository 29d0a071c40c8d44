"""Email through SendGrid's v3 Mail Send API, with the official `sendgrid` library.

Batching: one request carries up to 1,000 personalizations. Messages rendered per recipient still
share a request: the request's content is a skeleton of substitution tags (-crmflow_text-,
-crmflow_html-) and each personalization carries its own subject and its own rendered text/HTML as
`substitutions`. SendGrid caps substitutions at 10,000 bytes per personalization, so larger messages
are grouped by identical content instead (one request per distinct content, many recipients), and
messages with a SendGrid dynamic template (metadata["sendgrid_template_id"]) go as
dynamic_template_data. Every personalization carries custom_args.message_key (the ledger key),
which SendGrid echoes in every Event Webhook event.

One request = one outcome for all its messages: X-Message-Id becomes every message's
provider_message_id (events are joined by message_key, not by this id). A 400 that names specific
personalizations fails only those; the rest is re-sent (a 400 means nothing was sent).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from python_http_client.exceptions import HTTPError as SendGridHTTPError
from sendgrid import SendGridAPIClient

from connectors.channels.base import OutboundMessage, SendResult
from connectors.channels.config import SendGridConfig
from connectors.channels.http import map_bounded
from connectors.channels.masking import is_email, mask_email
from connectors.channels.ratelimit import TokenBucket, Unlimited
from connectors.channels.retry import (
    CallOutcome,
    build_retrier,
    classify_status,
    parse_retry_after,
    result_status,
)

log = logging.getLogger("crmflow.channels.sendgrid")


class _OnlyRequestLines(logging.Filter):
    """python_http_client (under the sendgrid library) logs every request's HEADERS (the API key in
    Authorization), PAYLOAD (recipient addresses) and response body at DEBUG: keep only the
    "POST Request: <url>" lines, so a DEBUG log level never leaks the key or PII."""

    def filter(self, record: logging.LogRecord) -> bool:
        return " Request: " in record.getMessage()


logging.getLogger("python_http_client.client").addFilter(_OnlyRequestLines())

DEFAULT_HOST = "https://api.sendgrid.com"
TEXT_TAG = "-crmflow_text-"
HTML_TAG = "-crmflow_html-"
# SendGrid's limit is 10,000 bytes of substitutions per personalization; keep headroom for the keys.
SUBSTITUTION_BUDGET_BYTES = 9_500
MAX_CATEGORIES = 10
_PERSONALIZATION_FIELD = re.compile(r"personalizations\.(\d+)")


@dataclass
class _Chunk:
    body_base: dict[str, Any]
    messages: list[OutboundMessage]
    personalizations: list[dict[str, Any]]


class SendGridChannel:
    name = "email"

    def __init__(
        self,
        config: SendGridConfig,
        api_key: str,
        host: str = DEFAULT_HOST,
        sleep: Callable[[float], None] = time.sleep,
        limiter: TokenBucket | Unlimited | None = None,
    ):
        self.config = config
        self.host = host.rstrip("/")
        self.max_batch = config.batch_size * config.max_concurrency
        self._client = SendGridAPIClient(api_key=api_key, host=self.host)
        self._retrier = build_retrier(config, sleep, limiter)

    # ---- request building -------------------------------------------------------------------
    def _categories(self, message: OutboundMessage) -> list[str]:
        cats = [message.journey_id, f"{message.journey_id}:{message.step_id}", *self.config.categories]
        unique = list(dict.fromkeys(c[:255] for c in cats if c))
        return unique[:MAX_CATEGORIES]

    def _base(self, message: OutboundMessage) -> dict[str, Any]:
        sender: dict[str, Any] = {"email": self.config.from_email}
        if self.config.from_name:
            sender["name"] = self.config.from_name
        body: dict[str, Any] = {"from": sender, "categories": self._categories(message)}
        if self.config.reply_to:
            body["reply_to"] = {"email": self.config.reply_to}
        if self.config.unsubscribe_group_id is not None:
            body["asm"] = {"group_id": self.config.unsubscribe_group_id}
        if self.config.sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def _personalization(self, message: OutboundMessage) -> dict[str, Any]:
        p: dict[str, Any] = {
            "to": [{"email": message.to}],
            # custom_args values must be strings; SendGrid echoes them in every event.
            "custom_args": {"message_key": message.message_key, "user_id": str(message.user_id),
                            "journey_id": message.journey_id, "step_id": message.step_id},
        }
        if self.config.list_unsubscribe:
            p["headers"] = {
                "List-Unsubscribe": self.config.list_unsubscribe.format(
                    message_key=message.message_key, user_id=message.user_id),
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return p

    def plan_requests(self, messages: Sequence[OutboundMessage]) -> tuple[list[_Chunk], list[SendResult]]:
        """Group messages into request bodies; messages that cannot be sent fail here, unsent."""
        groups: dict[tuple, _Chunk] = {}
        rejected: list[SendResult] = []
        for m in messages:
            if not is_email(m.to):
                rejected.append(SendResult(m.message_key, "failed", error="invalid email address", attempts=0,
                                           address_dead=True))
                continue
            template_id = m.metadata.get("sendgrid_template_id")
            if not template_id and not m.subject:
                rejected.append(SendResult(m.message_key, "failed", error="email without a subject", attempts=0))
                continue
            p = self._personalization(m)
            base_key = (m.journey_id, m.step_id)
            if template_id:
                p["dynamic_template_data"] = {"subject": m.subject or "", "body": m.body,
                                              **dict(m.metadata.get("template_data") or {})}
                key = ("template", *base_key, template_id)
                make_content: Callable[[], dict[str, Any]] = lambda t=template_id: {"template_id": t}  # noqa: E731
            elif len(m.body.encode()) + len((m.html or "").encode()) + len(m.subject.encode()) \
                    <= SUBSTITUTION_BUDGET_BYTES:
                p["subject"] = m.subject
                p["substitutions"] = {TEXT_TAG: m.body, **({HTML_TAG: m.html} if m.html else {})}
                key = ("subst", *base_key, bool(m.html))
                make_content = lambda h=bool(m.html): {"content": _content(TEXT_TAG, HTML_TAG if h else None)}  # noqa: E731
            else:
                digest = hashlib.sha256(f"{m.subject}\0{m.body}\0{m.html}".encode()).hexdigest()
                p["subject"] = m.subject
                key = ("content", *base_key, digest)
                make_content = lambda m=m: {"content": _content(m.body or " ", m.html)}  # noqa: E731
            chunk = groups.get(key)
            if chunk is None or len(chunk.messages) >= self.config.batch_size:
                if chunk is not None:  # full: park it under a unique key and start a new one
                    groups[(*key, id(chunk))] = chunk
                chunk = _Chunk({**self._base(m), **make_content()}, [], [])
                groups[key] = chunk
            chunk.messages.append(m)
            chunk.personalizations.append(p)
        return list(groups.values()), rejected

    # ---- sending ------------------------------------------------------------------------------
    def _post(self, body: dict[str, Any]) -> CallOutcome:
        try:
            response = self._client.client.mail.send.post(request_body=body, timeout=self.config.timeout_s)
        except SendGridHTTPError as exc:
            status = int(exc.status_code)
            headers = exc.headers or {}
            reason, indexes = _parse_error(exc.body)
            return CallOutcome(kind=classify_status(status), status=status, error=f"HTTP {status}: {reason}",
                               retry_after_s=parse_retry_after(headers.get("Retry-After")), data=indexes)
        except urllib.error.URLError as exc:
            # urllib wraps only connect-phase errors in URLError: nothing reached SendGrid.
            return CallOutcome(kind="retry", error=f"connect failed: {type(exc.reason).__name__}")
        except (TimeoutError, http.client.HTTPException, ConnectionError) as exc:
            return CallOutcome(kind="unknown", error=f"no response: {type(exc).__name__}")
        return CallOutcome(kind="ok", status=response.status_code,
                           provider_message_id=response.headers.get("X-Message-Id"))

    def _send_chunk(self, chunk: _Chunk) -> list[SendResult]:
        results: dict[str, SendResult] = {}
        pending = list(zip(chunk.messages, chunk.personalizations, strict=True))
        attempts_total = 0
        while pending:
            body = {**chunk.body_base, "personalizations": [p for _, p in pending]}
            outcome, attempts = self._retrier.run(lambda body=body: self._post(body))
            attempts_total += attempts
            if outcome.kind == "ok":
                for m, _ in pending:
                    results[m.message_key] = SendResult(m.message_key, "sent", outcome.provider_message_id,
                                                        attempts=attempts_total)
                break
            bad = set(outcome.data or []) if outcome.status == 400 else set()
            if bad and len(bad) < len(pending) and all(i < len(pending) for i in bad):
                # Only some recipients are invalid: fail those, re-send the others.
                for i in sorted(bad):
                    m = pending[i][0]
                    log.warning("sendgrid rejected %s: %s", mask_email(m.to), outcome.error)
                    results[m.message_key] = SendResult(m.message_key, "failed", error=outcome.error,
                                                        attempts=attempts_total)
                pending = [item for i, item in enumerate(pending) if i not in bad]
                continue
            log.warning("sendgrid request for %d message(s) failed: %s", len(pending), outcome.error)
            for m, _ in pending:
                results[m.message_key] = SendResult(m.message_key, result_status(outcome), error=outcome.error,
                                                    attempts=attempts_total)
            break
        return [results[m.message_key] for m in chunk.messages]

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        keys = [m.message_key for m in messages]
        if len(set(keys)) != len(keys):
            raise ValueError("send_batch got duplicate message_key values; the ledger key must be unique")
        chunks, rejected = self.plan_requests(messages)
        by_key = {r.message_key: r for r in rejected}
        for chunk_results in map_bounded(self._send_chunk, chunks, self.config.max_concurrency):
            by_key.update((r.message_key, r) for r in chunk_results)
        return [by_key[k] for k in keys]

    def check(self) -> tuple[bool, str]:
        """A harmless authenticated GET (/v3/scopes): proves the key and host work, sends nothing."""
        try:
            response = self._client.client.scopes.get(timeout=self.config.timeout_s)
        except SendGridHTTPError as exc:
            return False, f"GET /v3/scopes -> HTTP {exc.status_code}: {_parse_error(exc.body)[0]}"
        except (OSError, http.client.HTTPException) as exc:
            return False, f"GET /v3/scopes -> {type(exc).__name__}"
        return True, f"GET /v3/scopes -> HTTP {response.status_code}"


def _content(text: str, html: str | None) -> list[dict[str, str]]:
    content = [{"type": "text/plain", "value": text}]
    if html:
        content.append({"type": "text/html", "value": html})
    return content


def _parse_error(body: bytes | str | None) -> tuple[str, list[int]]:
    """SendGrid errors: {"errors": [{"message": ..., "field": ...}]} -> (reason, personalization idx)."""
    if not body:
        return "no error body", []
    try:
        data = json.loads(body)
        errors = data.get("errors") or []
        messages = [str(e.get("message", "")) + (f" ({e['field']})" if e.get("field") else "") for e in errors]
        indexes = sorted({int(match.group(1)) for e in errors
                          if (match := _PERSONALIZATION_FIELD.search(str(e.get("field") or "")))})
        return "; ".join(messages) or "unknown error", indexes
    except (ValueError, AttributeError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return text[:200], []
