"""Contract checks on the written tables (SQL over whole tables); each returns (passed, details)."""

from __future__ import annotations

from typing import Any

import duckdb


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchall()[0][0]


def clusters_contract(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, Any]]:
    dup = _one(con, "select count(*) - count(distinct user_id) from customer_clusters")
    nulls = _one(con, "select count(*) from customer_clusters where cluster_id is null or cluster_label is null")
    return dup == 0 and nulls == 0, {"duplicate_users": int(dup), "null_cluster_rows": int(nulls)}


def churn_contract(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, Any]]:
    dup = _one(con, "select count(*) - count(distinct user_id) from customer_churn_scores")
    bad = _one(con, """select count(*) from customer_churn_scores
                       where churn_probability is null or churn_probability < 0 or churn_probability > 1
                          or risk_band not in ('high', 'medium', 'low') or risk_band is null""")
    return dup == 0 and bad == 0, {"duplicate_users": int(dup), "invalid_rows": int(bad)}


def recommendations_contract(con: duckdb.DuckDBPyConnection, top_n: int) -> tuple[bool, dict[str, Any]]:
    dup_rank = _one(con, "select count(*) - count(distinct (user_id, rank)) from customer_recommendations")
    dup_sku = _one(con, "select count(*) - count(distinct (user_id, sku)) from customer_recommendations")
    bad_rank = _one(con, f"select count(*) from customer_recommendations where rank < 1 or rank > {int(top_n)}")
    return dup_rank == 0 and dup_sku == 0 and bad_rank == 0, {
        "duplicate_ranks": int(dup_rank), "duplicate_skus": int(dup_sku), "ranks_out_of_range": int(bad_rank)}


def priority_contract(con: duckdb.DuckDBPyConnection) -> tuple[bool, dict[str, Any]]:
    rows, ranks, max_rank = con.execute(
        "select count(*), count(distinct priority_rank), coalesce(max(priority_rank), 0) from customer_priority"
    ).fetchall()[0]
    return rows == ranks == max_rank, {"rows": int(rows), "distinct_ranks": int(ranks)}
