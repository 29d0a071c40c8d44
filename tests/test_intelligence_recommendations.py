"""Recommendations: co-purchase beats popularity, fallbacks fill the list, nothing already bought."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers_intelligence import AS_OF, simulate_warehouse
from scipy import sparse

from crmflow.intelligence.config import FeatureConfig, RecommendationConfig
from crmflow.intelligence.recommendations import (
    append_recommendations,
    co_purchase_top,
    item_similarity,
    merge_candidates,
    purchase_matrix,
    run_recommendations,
    write_recommendations,
)


@pytest.fixture(scope="module")
def warehouse():
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    simulate_warehouse(con, users=1500, seed=8)
    # A registered customer without any order: must still get (popular) recommendations.
    con.execute("insert into customer_profile by name select 'zz-new' as user_id, $a - interval 1 day "
                "as registered_at, 'individual' as customer_type", {"a": AS_OF})
    con.execute("create table customer_clusters as select user_id, (hash(user_id) % 3)::integer as cluster_id "
                "from customer_profile")
    yield con
    con.close()


@pytest.fixture(scope="module")
def result(warehouse):
    return run_recommendations(warehouse, AS_OF, RecommendationConfig(), FeatureConfig())


def test_co_purchase_beats_popularity_offline(result):
    m = result.metrics
    assert m["eval_users"] > 100
    assert m["hit_rate_at_5"] > m["baseline_hit_rate_at_5"] + 0.1
    assert m["recall_at_5"] > m["baseline_recall_at_5"]
    assert m["beats_popularity"] is True


def test_contract_and_never_already_bought(warehouse, result):
    write_recommendations(warehouse, result.recommendations)
    out = warehouse.execute("select * from customer_recommendations").df()
    assert list(out.columns) == ["user_id", "rank", "sku", "score", "reason"]
    assert set(out["reason"]) <= {"co_purchase", "popular_in_segment", "popular"}
    assert not out.duplicated(["user_id", "rank"]).any() and not out.duplicated(["user_id", "sku"]).any()
    assert out["rank"].between(1, 5).all()
    already = warehouse.execute("""
        select count(*) from customer_recommendations r join stg_shop__order_items i
        on i.user_id = r.user_id and i.sku = r.sku and i.status = 'paid'""").fetchall()[0][0]
    assert already == 0
    # Ranks are contiguous from 1 and every customer gets the full five (72 products exist).
    per_user = out.groupby("user_id")["rank"].agg(["min", "max", "count"])
    assert (per_user["min"] == 1).all() and (per_user["max"] == per_user["count"]).all()
    assert (per_user["count"] == 5).all()
    newcomer = out[out["user_id"] == "zz-new"]
    assert set(newcomer["reason"]) == {"popular_in_segment"}


def test_same_data_same_recommendations(warehouse, result):
    again = run_recommendations(warehouse, AS_OF, RecommendationConfig(), FeatureConfig())
    assert again.recommendations.equals(result.recommendations)


def test_similarity_and_top_n_on_a_crafted_basket():
    # Items 0 and 1 are always bought together; item 2 goes with 3.
    users = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4])
    items = np.array([0, 1, 0, 1, 2, 3, 2, 3, 0])
    x = purchase_matrix(users, items, 5, 4)
    sim = item_similarity(x, neighbours=2, chunk_cells=4)
    assert sim[0, 1] == pytest.approx(2 / np.sqrt(3 * 2)) and sim[0, 0] == 0 and sim[0, 2] == 0
    top, score = co_purchase_top(x, sim, np.arange(5), top_n=2, chunk_cells=8)
    assert top[4].tolist() == [1, -1]  # bought 0 -> offered 1; nothing else is related
    assert top[0].tolist() == [-1, -1]  # has both 0 and 1: no co-purchase signal left
    assert score[4, 0] > 0


def test_merge_skips_bought_and_repeated_items():
    x = sparse.csr_matrix(np.array([[1, 0, 0, 0, 0]], dtype=np.float32))
    co = (np.array([[2, -1]]), np.array([[0.9, 0.0]]))
    seg = (np.array([[0, 2, 3]]), np.array([[0.5, 0.4, 0.3]]))
    pop = (np.array([[4, 3, 1]]), np.array([[0.2, 0.1, 0.05]]))
    items, scores, reasons = merge_candidates(x, np.array([0]), [co, seg, pop], top_n=4)
    assert items.tolist() == [[2, 3, 4, 1]]
    assert reasons.tolist() == [[0, 1, 2, 2]]
    assert scores[0, 0] == pytest.approx(0.9)


def test_empty_warehouse_gives_empty_output():
    con = duckdb.connect()
    result = run_recommendations(con, AS_OF, RecommendationConfig(), FeatureConfig())
    assert result.decision == "insufficient_data" and result.recommendations.empty
    write_recommendations(con, result.recommendations)
    assert con.execute("select count(*) from customer_recommendations").fetchall()[0][0] == 0


def test_block_wise_scoring_equals_one_shot(warehouse, result):
    # Blocks of 7 users (many blocks, a ragged last one) written through the sink as the step does.
    small = RecommendationConfig(block_users=7)
    warehouse.execute("create or replace table _blocks (user_id varchar, rank integer, sku varchar, score double, "
                      "reason varchar)")
    blocked = run_recommendations(warehouse, AS_OF, small, FeatureConfig(), evaluation=result.metrics,
                                  sink=lambda block: append_recommendations(warehouse, "_blocks", block))
    assert blocked.recommendations.empty and blocked.metrics["rows"] == len(result.recommendations)
    assert blocked.metrics["evaluated"] is False and blocked.metrics["hit_rate_at_5"] == result.metrics["hit_rate_at_5"]
    out = warehouse.execute("select * from _blocks order by user_id, rank").df()
    pd.testing.assert_frame_equal(out, result.recommendations.sort_values(["user_id", "rank"], ignore_index=True),
                                  check_dtype=False)
