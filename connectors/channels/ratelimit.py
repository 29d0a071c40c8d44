"""A thread-safe token bucket (GCRA form) with an injectable clock and sleep, so tests are exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Limiter:
    """acquire = reserve a slot, then sleep until it (outside any lock). Subclasses: reserve, defer."""

    _sleep: Callable[[float], None]

    def reserve(self, tokens: int = 1) -> float:
        raise NotImplementedError

    def acquire(self, tokens: int = 1) -> float:
        wait = self.reserve(tokens)
        if wait > 0:
            self._sleep(wait)
        return wait


class TokenBucket(Limiter):
    """Admits `rate_per_s` acquisitions per second on average, with bursts of up to `burst`.

    GCRA keeps one number, the theoretical arrival time (tat) of the next token: each caller reserves
    its slot under the lock and sleeps outside it, so concurrent senders share the rate fairly and
    nobody holds the lock while waiting.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = 1.0 / rate_per_s
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat: float | None = None

    def reserve(self, tokens: int = 1) -> float:
        """Reserve `tokens` and return how long the caller must wait before using them."""
        with self._lock:
            now = self._clock()
            tat = now if self._tat is None else max(self._tat, now)
            wait = max(0.0, tat - self._tolerance - now)
            self._tat = tat + tokens * self._interval
            return wait

    def defer(self, seconds: float) -> None:
        """The provider said "slow down" (429 Retry-After): push every sender's next slot back."""
        with self._lock:
            now = self._clock()
            # + tolerance: the burst allowance must not let anyone through before the deadline.
            self._tat = max(self._tat or now, now + seconds + self._tolerance)


class Unlimited(Limiter):
    """Stands in for a TokenBucket when a channel has no configured rate. A 429 Retry-After still
    pauses the whole channel (every sender waits until the deadline), not just the message that got it."""

    rate_per_s = float("inf")

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until: float | None = None
        self._paused_by: int | None = None

    def reserve(self, tokens: int = 1) -> float:
        with self._lock:
            # The sender that got the 429 waits out the Retry-After itself (the Retrier sleeps it).
            if self._paused_until is None or self._paused_by == threading.get_ident():
                return 0.0
            return max(0.0, self._paused_until - self._clock())

    def defer(self, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            if self._paused_until is None or until > self._paused_until:
                self._paused_until, self._paused_by = until, threading.get_ident()
