"""Push through Firebase Cloud Messaging HTTP v1, one request per device token.

The bearer token comes from a TokenSource (connectors/channels/fcm_auth.py): FCM_ACCESS_TOKEN as
given, or minted and refreshed from the service-account file in GOOGLE_APPLICATION_CREDENTIALS. A 401
refreshes the token once and sends that message once more (only a refreshable source can).
UNREGISTERED, or INVALID_ARGUMENT about the token, marks the token dead (address_dead=True).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from connectors.channels.base import OutboundMessage, SendResult
from connectors.channels.config import FcmConfig
from connectors.channels.fcm_auth import StaticToken, TokenError, TokenSource
from connectors.channels.http import build_session, map_bounded, post
from connectors.channels.masking import mask_token
from connectors.channels.ratelimit import TokenBucket, Unlimited
from connectors.channels.retry import CallOutcome, build_retrier, result_status

log = logging.getLogger("crmflow.channels.fcm")

DEFAULT_API_BASE = "https://fcm.googleapis.com"


def parse_fcm_error(response: requests.Response) -> tuple[str, bool]:
    """FCM errors: {"error": {"code", "message", "status", "details": [{"errorCode": ...}]}}."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return response.text[:200] or response.reason, False
    status = str(error.get("status", ""))
    message = str(error.get("message", ""))
    details = error.get("details") or []
    codes = {str(d.get("errorCode")) for d in details if isinstance(d, dict) and d.get("errorCode")}
    fields = {str(v.get("field")) for d in details if isinstance(d, dict)
              for v in d.get("fieldViolations") or [] if isinstance(v, dict)}
    token_problem = "message.token" in fields or "token" in message.lower()
    invalid_argument = status == "INVALID_ARGUMENT" or "INVALID_ARGUMENT" in codes
    dead = "UNREGISTERED" in codes or (invalid_argument and token_problem)
    label = "/".join(sorted(codes | {status} - {""})) or "error"
    return f"fcm {label}: {message}", dead


class FcmChannel:
    name = "push"

    def __init__(
        self,
        config: FcmConfig,
        project_id: str,
        access_token: str | TokenSource,
        api_base: str = DEFAULT_API_BASE,
        sleep: Callable[[float], None] = time.sleep,
        limiter: TokenBucket | Unlimited | None = None,
    ):
        self.config = config
        self.max_batch = config.max_concurrency  # one message per request
        self.api_base = api_base.rstrip("/")
        self.url = f"{self.api_base}/v1/projects/{project_id}/messages:send"
        self._session = build_session(config.max_concurrency)
        # The token goes per request (never into session defaults) so a refresh reaches every thread.
        self.tokens: TokenSource = StaticToken(access_token) if isinstance(access_token, str) else access_token
        self._retrier = build_retrier(config, sleep, limiter)

    def request_body(self, message: OutboundMessage, validate_only: bool | None = None) -> dict[str, Any]:
        # data values must be strings (FCM map<string,string>); the ledger key rides along for the app.
        data = {"message_key": message.message_key, "journey_id": message.journey_id,
                "step_id": message.step_id}
        if message.deep_link:
            data["deep_link"] = message.deep_link
        body: dict[str, Any] = {"message": {
            "token": message.to,
            "notification": {"title": message.title or "", "body": message.body},
            "data": data,
        }}
        if self.config.validate_only if validate_only is None else validate_only:
            body["validateOnly"] = True
        return body

    def _send_one(self, message: OutboundMessage) -> SendResult:
        if not message.to:
            return SendResult(message.message_key, "failed", error="no push token", attempts=0)
        body = self.request_body(message)
        used: list[str] = []

        def call() -> CallOutcome:
            try:
                token = self.tokens.token()
            except TokenError as exc:
                return CallOutcome(kind="retry" if exc.retryable else "permanent", error=str(exc))
            used.append(token)
            return post(self._session, self.url, self.config.timeout_s, parse_fcm_error,
                        lambda r: r.json().get("name"), json=body, headers=_bearer(token))

        outcome, attempts = self._retrier.run(call)
        if outcome.status == 401 and used and self._refreshed(used[-1]):
            # The token expired or was revoked early: one more try with a fresh one, not a loop.
            outcome, more = self._retrier.run(call)
            attempts += more
        if outcome.kind == "ok":
            return SendResult(message.message_key, "sent", outcome.provider_message_id, attempts=attempts)
        log.warning("fcm send to %s failed: %s", mask_token(message.to), outcome.error)
        return SendResult(message.message_key, result_status(outcome), error=outcome.error, attempts=attempts,
                          address_dead=outcome.address_dead)

    def _refreshed(self, used: str) -> bool:
        try:
            return self.tokens.invalidate(used)
        except TokenError as exc:
            log.warning("fcm: refresh after 401 failed: %s", exc)
            return False

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return map_bounded(self._send_one, list(messages), self.config.max_concurrency)

    def check(self) -> tuple[bool, str]:
        """A validate_only send to a dummy token: FCM checks auth and project without delivering.
        An INVALID_ARGUMENT about the dummy token still proves credentials and endpoint work."""
        probe = OutboundMessage(message_key="crmflow-check", channel="push", user_id="check",
                                to="crmflow-check-token", journey_id="check", step_id="check",
                                title="check", body="check")
        try:
            token = self.tokens.token()
        except TokenError as exc:
            return False, str(exc)
        try:
            response = self._session.post(self.url, json=self.request_body(probe, validate_only=True),
                                          timeout=self.config.timeout_s, headers=_bearer(token))
        except requests.RequestException as exc:
            return False, f"POST messages:send (validate_only) -> {type(exc).__name__}"
        if response.ok:
            return True, f"validate_only -> HTTP {response.status_code}"
        reason, token_dead = parse_fcm_error(response)
        if response.status_code == 400 and token_dead:
            return True, f"validate_only -> HTTP 400 on the dummy token (auth OK): {reason}"
        return False, f"validate_only -> HTTP {response.status_code}: {reason}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
