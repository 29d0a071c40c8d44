"""The deterministic tie-break among creatives of equal priority, defined once and mirrored in SQL.

Each (user, slot) gets a bucket: the first 8 hex digits of md5("<user_id>|<slot>") as an integer.
Tied creatives, ordered by creative_id, own consecutive ranges of width `weight`; the creative whose
range holds bucket mod total_weight wins. Same inputs, same winner, in Python, DuckDB and
PostgreSQL, and over many users each creative's share is proportional to its weight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from crmflow.warehouse.dialect import hex_to_bigint


def slot_bucket(user_id: str, slot: str) -> int:
    return int(hashlib.md5(f"{user_id}|{slot}".encode()).hexdigest()[:8], 16)


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
    return hex_to_bigint(f"substr(md5({user_col} || '|' || {slot_col}), 1, 8)", dialect)
