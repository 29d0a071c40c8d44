"""A provider rate limit and 429 pause shared by every dispatch worker: one dispatch_channels row per
channel (migration 55), updated atomically.

GCRA as in connectors/channels/ratelimit.py, with the theoretical arrival time (tat) in the database:
each acquisition is one UPDATE ... RETURNING that reserves its slot under the row lock, then the
worker sleeps until the slot outside any transaction. A 429 Retry-After (`defer`) pushes the pause
and the next slot of the whole channel, so every worker waits, not only the one that got the 429.
Times are epoch seconds of the workers' clock (`time.time`: the workers share one host's clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.channels.ratelimit import Limiter
from crmflow.warehouse import Warehouse


class SharedLimiter(Limiter):
    def __init__(self, wh: Warehouse, channel: str, rate_per_s: float | None, burst: int = 1,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.wh = wh  # this limiter's own connection (used by the channel's sending threads, serialised)
        self.channel = channel
        self.rate_per_s = rate_per_s or float("inf")
        self._interval = 1.0 / rate_per_s if rate_per_s else 0.0
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._pause_read_at = float("-inf")
        with self._lock:
            wh.execute("""insert into dispatch_channels (channel, tat, paused_until, updated_at)
                          values ($channel, 0, 0, $now) on conflict do nothing""",
                       {"channel": channel, "now": datetime.now(UTC)})

    def reserve(self, tokens: int = 1) -> float:
        cost = tokens * self._interval
        with self._lock:
            now = self._clock()
            if not cost:  # no rate limit: only the pause matters; read it (no row lock), at most every 0.1 s
                if now - self._pause_read_at > 0.1:
                    self._paused_until = float(self.wh.scalar(
                        "select paused_until from dispatch_channels where channel = $channel",
                        {"channel": self.channel}))
                    self._pause_read_at = now
                return max(0.0, self._paused_until - now)
            start, = self.wh.fetch_rows("""update dispatch_channels
                set tat = greatest(tat, $now, paused_until) + $cost
                where channel = $channel returning tat - $cost""",
                {"now": now, "cost": cost, "channel": self.channel})[0]
        return max(0.0, float(start) - self._tolerance - now)

    def defer(self, seconds: float) -> None:
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            self.wh.execute("""update dispatch_channels
                set paused_until = greatest(paused_until, $until), tat = greatest(tat, $until + $tolerance),
                    pause_reason = 'provider asked to wait (429 Retry-After)', updated_at = $at
                where channel = $channel""",
                {"until": now + seconds, "tolerance": self._tolerance, "channel": self.channel,
                 "at": datetime.now(UTC)})
