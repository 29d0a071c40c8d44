"""Signed outbound webhooks: POST one JSON document per message to a configured URL.

Signature header (Stripe-style, so receivers can reject replays by age):
    X-Crmflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>
The secret comes from CRMFLOW_WEBHOOK_SECRET. Receivers should compare in constant time and
reject timestamps older than a few minutes. X-Crmflow-Message-Key lets receivers de-duplicate
(a retried timeout can deliver twice).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from connectors.channels.base import OutboundMessage, SendResult
from connectors.channels.config import WebhookConfig
from connectors.channels.http import build_session, map_bounded, post
from connectors.channels.ratelimit import TokenBucket, Unlimited
from connectors.channels.retry import build_retrier, result_status

log = logging.getLogger("crmflow.channels.webhook")

SIGNATURE_HEADER = "X-Crmflow-Signature"


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_webhook(secret: str, body: bytes, header: str, now: int, tolerance_s: int = 300) -> bool:
    """Receiver-side check (also used by tests): signature matches and is not older than tolerance."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign_webhook(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _parse_error(response: requests.Response) -> tuple[str, bool]:
    return (response.text[:200] or response.reason or "error"), False


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        config: WebhookConfig,
        url: str,
        secret: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        limiter: TokenBucket | Unlimited | None = None,
    ):
        self.config = config
        self.max_batch = config.max_concurrency  # one message per request
        self.url = url
        self._secret = secret
        self._clock = clock
        self._session = build_session(config.max_concurrency)
        self._retrier = build_retrier(config, sleep, limiter)

    @staticmethod
    def payload(message: OutboundMessage) -> dict[str, Any]:
        return {
            "message_key": message.message_key, "user_id": message.user_id, "recipient": message.to,
            "journey_id": message.journey_id, "step_id": message.step_id, "variant": message.variant,
            "subject": message.subject, "title": message.title, "body": message.body,
            "deep_link": message.deep_link, "locale": message.locale, "metadata": message.metadata,
        }

    def _attempt(self, message: OutboundMessage, body: bytes):
        # Re-signed on every attempt so the timestamp stays fresh for the receiver's age check.
        headers = {"Content-Type": "application/json", "X-Crmflow-Message-Key": message.message_key,
                   SIGNATURE_HEADER: sign_webhook(self._secret, body, int(self._clock()))}
        return post(self._session, self.url, self.config.timeout_s, _parse_error,
                    lambda r: r.headers.get("X-Request-Id"), data=body, headers=headers)

    def _send_one(self, message: OutboundMessage) -> SendResult:
        body = json.dumps(self.payload(message), ensure_ascii=False, sort_keys=True, default=str).encode()
        outcome, attempts = self._retrier.run(lambda: self._attempt(message, body))
        if outcome.kind == "ok":
            return SendResult(message.message_key, "sent", outcome.provider_message_id, attempts=attempts)
        log.warning("webhook %s failed: %s", message.message_key, outcome.error)
        return SendResult(message.message_key, result_status(outcome), error=outcome.error, attempts=attempts)

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return map_bounded(self._send_one, list(messages), self.config.max_concurrency)

    def check(self) -> tuple[bool, str]:
        """HEAD the URL: any HTTP answer below 500 proves it is reachable (nothing is posted)."""
        try:
            response = self._session.head(self.url, timeout=self.config.timeout_s)
        except requests.RequestException as exc:
            return False, f"HEAD -> {type(exc).__name__}"
        return response.status_code < 500, f"HEAD -> HTTP {response.status_code}"
