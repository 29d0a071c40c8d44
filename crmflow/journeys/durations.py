"""Durations in marketer config: '30m', '4h', '2d', '1w' (also plain integers = days is NOT allowed)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WrittenDuration(timedelta):
    """A parsed duration that remembers how the marketer wrote it, so reasons and messages echo the
    config ('7d' stays '7d' in `cap:email:3/7d`, not the equal '1w')."""

    text: str

    def __new__(cls, text: str, **parts: int) -> WrittenDuration:
        duration = super().__new__(cls, **parts)
        duration.text = text
        return duration

    def __reduce__(self):  # copies and pickles keep the text (timedelta's own reduce drops it)
        return (parse_duration, (self.text,))


def parse_duration(value: object) -> timedelta:
    """Parse '2d' / '4h' / '30m' / '1w'. Anything else is a clear error (the marketer sees it)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"duration must be a string like '2d', '4h', '30m' or '1w', got {value!r}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit m, h, d or w (e.g. '2d')")
    amount, unit = int(match.group(1)), match.group(2)
    return WrittenDuration(f"{amount}{unit}", **{_UNITS[unit]: amount})


def format_duration(delta: timedelta) -> str:
    """As the config wrote it (spaces dropped); a duration built in code: its largest whole unit."""
    if isinstance(delta, WrittenDuration):
        return delta.text
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def sql_interval(delta: timedelta) -> str:
    """A DuckDB interval literal built from a parsed timedelta (never from user text)."""
    return f"interval '{int(delta.total_seconds())} seconds'"
