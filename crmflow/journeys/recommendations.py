"""The `recommendations` template variable: each user's rows of customer_recommendations (written by
the intelligence stage), ordered by rank, as [{sku, score, reason, rank}, ...].

Loaded set-based (never one query per user): dispatch stages them once per run for all due messages
(`recommendations_sql`), preview loads them for its few samples. An empty list when the user has none
or when the intelligence stage has not run yet (no table).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

# What templates see at validation time (journeys validate): one plausible row, so
# `{{ recommendations[0].sku }}` validates while unknown names still fail.
SAMPLE_RECOMMENDATIONS: list[dict[str, Any]] = [
    {"sku": "SKU-SAMPLE", "score": 0.5, "reason": "co_purchase", "rank": 1},
]


def recommendations_sql(users: str, user_column: str = "user_id") -> str:
    """user_id, recommendations (ordered by rank) for the users in relation `users` (`user_column`)."""
    return f"""select r.user_id,
                      list({{'sku': r.sku, 'score': r.score, 'reason': r.reason, 'rank': r.rank}}
                           order by r.rank, r.sku) as recommendations
               from customer_recommendations r semi join {users} u on u.{user_column} = r.user_id
               group by r.user_id"""


def load_recommendations(con: duckdb.DuckDBPyConnection, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """user_id -> that user's recommendations ordered by rank (users without rows are absent)."""
    ids = sorted({u for u in user_ids if u is not None})
    if not ids or not _has_table(con, "customer_recommendations"):
        return {}
    con.register("_rec_user_ids", pa.table({"user_id": pa.array(ids, pa.string())}))
    try:
        rows = con.execute(recommendations_sql("_rec_user_ids")).fetchall()
    finally:
        con.unregister("_rec_user_ids")
    return {user_id: recs for user_id, recs in rows}


def has_recommendations_table(con: duckdb.DuckDBPyConnection) -> bool:
    return _has_table(con, "customer_recommendations")


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    # fetchall, not fetchone: DuckDB 2.0 refuses register() while a result is still open.
    rows = con.execute("select 1 from information_schema.tables where table_name = ?", [name]).fetchall()
    return bool(rows)
