"""Stable buckets computed identically in SQL and Python: md5 -> first 8 hex chars -> int mod 10000.

(DuckDB's hash() changes between versions; md5 does not, so holdouts and A/B splits stay put.)"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(*parts: str) -> int:
    key = ":".join(parts)
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % BUCKETS


def bucket_sql(*sql_parts: str) -> str:
    """SQL for the same bucket; each part is an SQL expression (column or bound parameter)."""
    joined = " || ':' || ".join(f"cast({p} as varchar)" for p in sql_parts)
    return f"(cast('0x' || substr(md5({joined}), 1, 8) as bigint) % {BUCKETS})"


def message_key(journey_id: str, enrolment_id: str, step_id: str, variant: str | None) -> str:
    return hashlib.sha256(f"{journey_id}|{enrolment_id}|{step_id}|{variant or ''}".encode()).hexdigest()


def message_key_sql(journey: str, enrolment: str, step: str, variant: str) -> str:
    return (f"sha256({journey} || '|' || {enrolment} || '|' || {step} || '|' || coalesce({variant}, ''))")
