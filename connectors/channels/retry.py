"""Retry with exponential backoff and jitter, honouring Retry-After.

Which failures are retried:
- 429 and 5xx: the provider refused or failed the request; it did not deliver it.
- connect errors (connection refused, connect timeout): nothing reached the provider.
- read timeouts and connections dropped after the request was sent: the outcome is UNKNOWN. The
  provider may have accepted the message, so a retry can deliver it twice (at-least-once). This is
  retried only when the channel's `retry_on_timeout` is true (opt-in); by default (at-most-once) the
  result is `unknown`, never `failed`: the ledger records it as unknown and a delivery event carrying
  the message key settles it (crmflow/journeys/settle.py). Once any attempt had an unknown outcome,
  the final result stays `unknown` whatever later attempts say.
- every other 4xx is permanent: no retry, the provider's reason is returned (`failed`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from connectors.channels.ratelimit import TokenBucket, Unlimited

# ok: accepted. retry: certainly not delivered, safe to retry. unknown: maybe delivered (timeout,
# dropped connection). permanent: rejected for good.
OutcomeKind = Literal["ok", "retry", "unknown", "permanent"]


@dataclass(frozen=True)
class CallOutcome:
    kind: OutcomeKind
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    provider_message_id: str | None = None
    address_dead: bool = False
    data: Any = None  # provider-specific payload (e.g. failed personalization indexes)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    retry_on_timeout: bool = False
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0


@dataclass
class Retrier:
    """Runs one provider call with the channel's rate limit and retry policy."""

    policy: RetryPolicy
    limiter: TokenBucket | Unlimited = field(default_factory=Unlimited)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        # "Equal jitter": half fixed, half random, so retries spread out but never collapse to 0.
        ceiling = min(self.policy.backoff_max_s, self.policy.backoff_base_s * (2 ** (attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def run(self, call: Callable[[], CallOutcome], tokens: int = 1) -> tuple[CallOutcome, int]:
        """Return the final outcome and the number of attempts made."""
        attempt = 0
        maybe_sent = False  # an earlier attempt may have reached the provider
        while True:
            attempt += 1
            self.limiter.acquire(tokens)
            outcome = call()
            if outcome.kind == "ok":
                return outcome, attempt
            if outcome.kind == "permanent":
                return (_unknown(outcome, "an earlier attempt's outcome is unknown") if maybe_sent else outcome), attempt
            if outcome.kind == "unknown":
                maybe_sent = True
                if not self.policy.retry_on_timeout:
                    return _unknown(outcome, "outcome unknown, not retried (at_most_once)"), attempt
            if attempt >= self.policy.max_attempts:
                note = f"gave up after {attempt} attempts"
                return (_unknown(outcome, note) if maybe_sent else _failed(outcome, note)), attempt
            if outcome.retry_after_s is not None:
                if outcome.retry_after_s > self.policy.max_retry_after_s:
                    note = (f"Retry-After {outcome.retry_after_s:.0f}s exceeds "
                            f"max_retry_after_s={self.policy.max_retry_after_s:.0f}")
                    self.limiter.defer(outcome.retry_after_s)
                    return (_unknown(outcome, note) if maybe_sent else _failed(outcome, note)), attempt
                self.limiter.defer(outcome.retry_after_s)
                delay = outcome.retry_after_s
            else:
                delay = self.backoff(attempt)
            self.sleep(delay)


def build_retrier(policy: Any, sleep: Callable[[float], None] = time.sleep,
                  limiter: TokenBucket | Unlimited | None = None) -> Retrier:
    """The Retrier for a channel config (a SendingPolicy): its rate limit and retry settings."""
    if limiter is None:
        limiter = TokenBucket(policy.rate_limit_per_s, policy.burst, sleep=sleep) \
            if policy.rate_limit_per_s else Unlimited(sleep=sleep)
    return Retrier(RetryPolicy(policy.max_attempts, policy.retry_on_timeout, policy.backoff_base_s,
                               policy.backoff_max_s, policy.max_retry_after_s), limiter=limiter, sleep=sleep)


def _unknown(outcome: CallOutcome, note: str) -> CallOutcome:
    error = f"{outcome.error}; {note}" if outcome.error else note
    return CallOutcome(kind="unknown", status=outcome.status, error=error, data=outcome.data)


def result_status(outcome: CallOutcome) -> str:
    """A final non-ok outcome as a SendResult status: `unknown` when the provider may have the message."""
    return "unknown" if outcome.kind == "unknown" else "failed"


def _failed(outcome: CallOutcome, note: str) -> CallOutcome:
    error = f"{outcome.error}; {note}" if outcome.error else note
    return CallOutcome(kind="permanent", status=outcome.status, error=error, data=outcome.data)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_status(status: int) -> OutcomeKind:
    if 200 <= status < 300:
        return "ok"
    if status == 429 or status >= 500:
        return "retry"
    return "permanent"
