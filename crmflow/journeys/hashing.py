"""Stable buckets computed identically in SQL and Python: md5 -> first 8 hex chars -> int mod 10000.

md5 gives the same hex on DuckDB, PostgreSQL and Python (DuckDB's hash() changes between versions and
exists nowhere else), so holdouts and A/B splits stay put whatever the engine. Message keys are the
hex SHA-256 of journey|enrolment|step|variant on every engine (crmflow.warehouse.dialect.sha256_hex).
"""

from __future__ import annotations

import hashlib

from crmflow.warehouse.dialect import hex_to_bigint, sha256_hex

BUCKETS = 10_000


def md5_int(text: str) -> int:
    """The first 8 hex digits of md5(text) as an integer (also the banner tie-break's bucket)."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16)


def md5_int_sql(text_sql: str, dialect: str) -> str:
    """SQL (bigint) equal to md5_int() of a text expression, on every engine."""
    return hex_to_bigint(f"substr(md5({text_sql}), 1, 8)", dialect)


def bucket(*parts: str) -> int:
    return md5_int(":".join(parts)) % BUCKETS


def bucket_sql(dialect: str, *sql_parts: str) -> str:
    """SQL for the same bucket; each part is an SQL expression (column or bound parameter)."""
    joined = " || ':' || ".join(f"cast({p} as varchar)" for p in sql_parts)
    return f"({md5_int_sql(joined, dialect)} % {BUCKETS})"


def message_key(journey_id: str, enrolment_id: str, step_id: str, variant: str | None) -> str:
    return hashlib.sha256(f"{journey_id}|{enrolment_id}|{step_id}|{variant or ''}".encode()).hexdigest()


def message_key_sql(dialect: str, journey: str, enrolment: str, step: str, variant: str) -> str:
    return sha256_hex(f"{journey} || '|' || {enrolment} || '|' || {step} || '|' || coalesce({variant}, '')", dialect)
