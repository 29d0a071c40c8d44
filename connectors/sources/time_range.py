"""The timestamps ingestion accepts: any date a real business has, never an event from the future.

Orders and registrations are accepted from `earliest` (default 1900-01-01: shops keep purchase
histories from the 1990s and earlier) up to `latest` (default 2100-01-01). An event is a record of
something that already happened, so its upper bound is also the run's as-of plus a small clock skew
(default 1 day: device clocks run ahead, and a day's file may land before the day ends). Rows
outside go to quarantine as `timestamp_out_of_range`.

The bounds reach the validation SQL as a one-row temp table, `_accepted_times`, written once per
ingest (a missing table is an error, so a rule can never silently accept everything).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the landing parser, an in-memory DuckDB (landing_parser.py)
    from connectors.sources.landing_parser import Parser

ENV_EARLIEST = "CRMFLOW_TIMESTAMP_MIN"
ENV_LATEST = "CRMFLOW_TIMESTAMP_MAX"
ENV_EVENT_SKEW_HOURS = "CRMFLOW_EVENT_CLOCK_SKEW_HOURS"
DEFAULT_EARLIEST = "1900-01-01"
DEFAULT_LATEST = "2100-01-01"
DEFAULT_EVENT_SKEW_HOURS = 24.0


@dataclass(frozen=True)
class AcceptedTimes:
    earliest: datetime
    latest: datetime
    event_skew: timedelta

    def __post_init__(self) -> None:
        if self.earliest.tzinfo is None or self.latest.tzinfo is None:
            raise ValueError("accepted timestamp bounds must be timezone-aware")
        if self.latest <= self.earliest:
            raise ValueError(f"{ENV_LATEST} ({self.latest.isoformat()}) must be after "
                             f"{ENV_EARLIEST} ({self.earliest.isoformat()})")
        if self.event_skew < timedelta(0):
            raise ValueError(f"{ENV_EVENT_SKEW_HOURS} must be >= 0 hours, got {self.event_skew}")

    def latest_event(self, as_of: datetime) -> datetime:
        return min(self.latest, as_of + self.event_skew)

    @classmethod
    def parse(cls, earliest: str = DEFAULT_EARLIEST, latest: str = DEFAULT_LATEST,
              event_skew_hours: float | str = DEFAULT_EVENT_SKEW_HOURS) -> AcceptedTimes:
        """From settings text: ISO dates or date-times (naive = UTC) and a number of hours."""
        try:
            skew = float(event_skew_hours)
        except ValueError:
            raise ValueError(f"{ENV_EVENT_SKEW_HOURS}: {event_skew_hours!r} is not a number of hours") from None
        return cls(_parse_bound(ENV_EARLIEST, earliest), _parse_bound(ENV_LATEST, latest), timedelta(hours=skew))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AcceptedTimes:
        return cls.parse(env.get(ENV_EARLIEST, DEFAULT_EARLIEST), env.get(ENV_LATEST, DEFAULT_LATEST),
                         env.get(ENV_EVENT_SKEW_HOURS, DEFAULT_EVENT_SKEW_HOURS))


def _parse_bound(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an ISO-8601 date or date-time (e.g. 1900-01-01)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DEFAULT_ACCEPTED_TIMES = AcceptedTimes.parse()


def load_accepted_times(con: Parser, accepted: AcceptedTimes, as_of: datetime) -> None:
    """The one-row temp table `_accepted_times(earliest, latest, latest_event)` the rules read."""
    con.execute(
        "create or replace temp table _accepted_times as"
        " select ?::timestamptz as earliest, ?::timestamptz as latest, ?::timestamptz as latest_event",
        [accepted.earliest, accepted.latest, accepted.latest_event(as_of)],
    )
