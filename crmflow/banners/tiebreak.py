"""The deterministic tie-break among creatives of equal priority, defined once and mirrored in SQL.

Each (user, slot) gets a bucket: the first 8 hex digits of md5("<user_id>|<slot>") as an integer.
Tied creatives, ordered by creative_id, own consecutive ranges of width `weight`; the creative whose
range holds bucket mod total_weight wins. Same inputs, same winner, in Python, DuckDB and
PostgreSQL, and over many users each creative's share is proportional to its weight.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmflow.journeys.hashing import md5_int, md5_int_sql


def slot_bucket(user_id: str, slot: str) -> int:
    return md5_int(f"{user_id}|{slot}")


def pick_weighted(user_id: str, slot: str, tied: Sequence[tuple[str, int]]) -> str:
    """The winner among (creative_id, weight) pairs tied on priority."""
    ordered = sorted(tied)
    total = sum(weight for _, weight in ordered)
    point = slot_bucket(user_id, slot) % total
    cumulative = 0
    for creative_id, weight in ordered:
        cumulative += weight
        if point < cumulative:
            return creative_id
    raise AssertionError("unreachable: point < total")


def sql_slot_bucket(user_col: str, slot_col: str, dialect: str = "duckdb") -> str:
    """SQL expression (bigint) equal to slot_bucket()."""
    return md5_int_sql(f"{user_col} || '|' || {slot_col}", dialect)
