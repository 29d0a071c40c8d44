"""SMS through Twilio's Messages API (form-encoded POST, basic auth), one request per message.

E.164 is validated before sending: an invalid number fails without a request. The ledger key rides
on the StatusCallback URL (?message_key=...), so status callbacks join back to the ledger even
before the provider message id (the SM... sid) is known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from connectors.channels.base import OutboundMessage, SendResult
from connectors.channels.config import TwilioConfig
from connectors.channels.http import build_session, map_bounded, post
from connectors.channels.masking import is_e164, mask_phone
from connectors.channels.ratelimit import TokenBucket, Unlimited
from connectors.channels.retry import build_retrier, result_status

log = logging.getLogger("crmflow.channels.twilio")

DEFAULT_API_BASE = "https://api.twilio.com"
# Twilio error codes that mean the number itself will never work (invalid, landline, opted out).
DEAD_NUMBER_CODES = {21211, 21214, 21217, 21407, 21421, 21610, 21612, 21614}


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def parse_twilio_error(response: requests.Response) -> tuple[str, bool]:
    """Twilio errors: {"code": 21211, "message": "...", "more_info": ..., "status": 400}."""
    try:
        data = response.json()
        code = data.get("code")
        reason = f"twilio {code}: {data.get('message', '')}".strip()
        return reason, isinstance(code, int) and code in DEAD_NUMBER_CODES
    except ValueError:
        return response.text[:200] or response.reason, False


class TwilioChannel:
    name = "sms"

    def __init__(
        self,
        config: TwilioConfig,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base: str = DEFAULT_API_BASE,
        sleep: Callable[[float], None] = time.sleep,
        limiter: TokenBucket | Unlimited | None = None,
    ):
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs a sender: TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
        self.config = config
        self.max_batch = config.max_concurrency  # one message per request
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.api_base = api_base.rstrip("/")
        self.url = f"{self.api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._session = build_session(config.max_concurrency)
        self._session.auth = (account_sid, auth_token)
        self._retrier = build_retrier(config, sleep, limiter)

    def form(self, message: OutboundMessage) -> dict[str, str]:
        form = {"To": message.to, "Body": message.body}
        # A messaging service wins when both are set: it owns sender pools and opt-out handling.
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number or ""
        if self.config.status_callback_url:
            form["StatusCallback"] = _with_query(self.config.status_callback_url,
                                                 message_key=message.message_key)
        return form

    def _send_one(self, message: OutboundMessage) -> SendResult:
        if not is_e164(message.to):
            return SendResult(message.message_key, "failed", error="invalid E.164 phone number", attempts=0,
                              address_dead=True)
        if not message.body:
            return SendResult(message.message_key, "failed", error="empty SMS body", attempts=0)
        form = self.form(message)
        outcome, attempts = self._retrier.run(lambda: post(
            self._session, self.url, self.config.timeout_s, parse_twilio_error,
            lambda r: r.json().get("sid"), data=form))
        if outcome.kind == "ok":
            return SendResult(message.message_key, "sent", outcome.provider_message_id, attempts=attempts)
        log.warning("twilio send to %s failed: %s", mask_phone(message.to), outcome.error)
        return SendResult(message.message_key, result_status(outcome), error=outcome.error, attempts=attempts,
                          address_dead=outcome.address_dead)

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return map_bounded(self._send_one, list(messages), self.config.max_concurrency)

    def check(self) -> tuple[bool, str]:
        """GET Accounts/{sid}.json: proves the credentials and base URL, sends nothing."""
        url = f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}.json"
        try:
            response = self._session.get(url, timeout=self.config.timeout_s)
        except requests.RequestException as exc:
            return False, f"GET Accounts/<sid>.json -> {type(exc).__name__}"
        if response.ok:
            return True, f"GET Accounts/<sid>.json -> HTTP {response.status_code}"
        return False, f"GET Accounts/<sid>.json -> HTTP {response.status_code}: {parse_twilio_error(response)[0]}"
