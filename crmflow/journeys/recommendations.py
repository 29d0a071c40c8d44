"""The `recommendations` template variable: each user's rows of customer_recommendations (written by
the intelligence stage), ordered by rank, as [{sku, score, reason, rank}, ...].

Loaded set-based (never one query per user): dispatch stages them once per run for all due messages
(journeys/dispatch.py), preview loads them for its few samples (`load_recommendations`).
An empty list when the user has none or when the intelligence stage has not run yet (no table).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from crmflow.warehouse import Warehouse, as_warehouse

# What templates see at validation time (journeys validate): one plausible row, so
# `{{ recommendations[0].sku }}` validates while unknown names still fail.
SAMPLE_RECOMMENDATIONS: list[dict[str, Any]] = [
    {"sku": "SKU-SAMPLE", "score": 0.5, "reason": "co_purchase", "rank": 1},
]
REC_USERS = "_rec_user_ids"


def load_recommendations(con: Warehouse | Any, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """user_id -> that user's recommendations ordered by rank (users without rows are absent)."""
    wh = as_warehouse(con)
    ids = sorted({u for u in user_ids if u is not None})
    if not ids or not has_recommendations_table(wh):
        return {}
    wh.create_temp_table(REC_USERS, pa.table({"user_id": pa.array(ids, pa.string())}))
    try:
        rows = wh.fetch_arrow(f"""
            select r.user_id, r.sku, r.score, r.reason, r.rank from customer_recommendations r
            where r.user_id in (select user_id from {REC_USERS})
            order by r.user_id, r.rank nulls last, r.sku nulls last""").to_pylist()
    finally:
        wh.drop_table(REC_USERS)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:  # already ordered: group the few sample users' rows
        user_id = row.pop("user_id")
        out.setdefault(user_id, []).append(row)
    return out


def has_recommendations_table(con: Warehouse | Any) -> bool:
    return as_warehouse(con).table_exists("customer_recommendations")
