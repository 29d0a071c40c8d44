"""Contract checks on the written tables (SQL over whole tables); each returns (passed, details)."""

from __future__ import annotations

from typing import Any

from crmflow.intelligence.tables import CHURN_SCORES, CLUSTERS, PRIORITY, RECOMMENDATIONS, output_relation
from crmflow.warehouse import Warehouse, as_warehouse


def _one(con: Warehouse | object, sql: str, table: str) -> Any:
    wh = as_warehouse(con)
    return wh.scalar(sql.format(t=output_relation(wh, table)))


def clusters_contract(con: Warehouse | object) -> tuple[bool, dict[str, Any]]:
    dup = _one(con, "select count(*) - count(distinct user_id) from {t}", CLUSTERS)
    nulls = _one(con, "select count(*) from {t} where cluster_id is null or cluster_label is null", CLUSTERS)
    return dup == 0 and nulls == 0, {"duplicate_users": int(dup), "null_cluster_rows": int(nulls)}


def churn_contract(con: Warehouse | object) -> tuple[bool, dict[str, Any]]:
    dup = _one(con, "select count(*) - count(distinct user_id) from {t}", CHURN_SCORES)
    bad = _one(con, """select count(*) from {t}
                       where churn_probability is null or churn_probability < 0 or churn_probability > 1
                          or risk_band not in ('high', 'medium', 'low') or risk_band is null""", CHURN_SCORES)
    return dup == 0 and bad == 0, {"duplicate_users": int(dup), "invalid_rows": int(bad)}


def recommendations_contract(con: Warehouse | object, top_n: int) -> tuple[bool, dict[str, Any]]:
    # count(distinct (a, b)) is DuckDB-only: count the distinct pairs in a subquery instead.
    pairs = "select count(*) from (select distinct user_id, {key} from {{t}}) pairs"
    total = _one(con, "select count(*) from {t}", RECOMMENDATIONS)
    dup_rank = total - _one(con, pairs.format(key="rank"), RECOMMENDATIONS)
    dup_sku = total - _one(con, pairs.format(key="sku"), RECOMMENDATIONS)
    bad_rank = _one(con, f"select count(*) from {{t}} where rank < 1 or rank > {int(top_n)}", RECOMMENDATIONS)
    return dup_rank == 0 and dup_sku == 0 and bad_rank == 0, {
        "duplicate_ranks": int(dup_rank), "duplicate_skus": int(dup_sku), "ranks_out_of_range": int(bad_rank)}


def priority_contract(con: Warehouse | object) -> tuple[bool, dict[str, Any]]:
    wh = as_warehouse(con)
    rows, ranks, max_rank = wh.fetch_rows(
        "select count(*), count(distinct priority_rank), coalesce(max(priority_rank), 0) "
        f"from {output_relation(wh, PRIORITY)}"
    )[0]
    return rows == ranks == max_rank, {"rows": int(rows), "distinct_ranks": int(ranks)}
