"""Clusters: k chosen by silhouette, ids stable across runs, readable labels, deterministic."""

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from helpers_intelligence import AS_OF, blob_features, simulate_warehouse
from threadpoolctl import threadpool_limits

from crmflow.intelligence.clustering import fit_clusters, run_clustering, write_clusters
from crmflow.intelligence.config import ClusteringConfig, FeatureConfig


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with threadpool_limits(1):
        yield


CFG = ClusteringConfig(k_min=2, k_max=6, selection_sample=2000, silhouette_sample=1500)
CATS = {"cat_shoes": "shoes"}


def _previous(centroids: pd.DataFrame) -> pd.DataFrame:
    return centroids.drop(columns=["cluster_label", "size"])


def test_k_is_chosen_by_silhouette_and_labels_are_readable():
    assignments, centroids, metrics = fit_clusters(blob_features(seed=1), CATS, CFG)
    assert metrics["k"] == 4
    assert metrics["silhouette"] > 0.5
    assert sorted(centroids["cluster_id"]) == [1, 2, 3, 4]
    labels = dict(zip(centroids["cluster_id"], centroids["cluster_label"], strict=True))
    by_user = assignments.set_index("user_id")["cluster_id"]
    prospects = labels[by_user["b00000"]]
    frequent = labels[by_user["b00400"]]
    shoes = labels[by_user["b00800"]]
    assert prospects.startswith("no purchase yet")
    assert {"high-frequency", "frequent visitors", "highly engaged", "mobile"} & set(frequent.split(", "))
    assert "shoes-focused" in shoes
    assert len(set(labels.values())) == 4
    assert (assignments["distance"] >= 0).all()


def test_ids_survive_a_rerun_on_perturbed_data():
    first, centroids, _ = fit_clusters(blob_features(seed=1), CATS, CFG)
    # A day later: values drift a few percent, 3% of customers are gone, rows come in another order.
    later = blob_features(seed=2, shift=0.03)
    later = later.sample(frac=0.97, random_state=0).reset_index(drop=True)
    second, centroids2, metrics = fit_clusters(later, CATS, CFG, previous=_previous(centroids))
    assert metrics["ids_inherited"] == 4
    assert sorted(centroids2["cluster_id"]) == sorted(centroids["cluster_id"])
    joined = first.merge(second, on="user_id", suffixes=("_1", "_2"))
    assert (joined["cluster_id_1"] == joined["cluster_id_2"]).mean() > 0.98
    # Without the previous centroids the numbering is by size and could differ: matching did the work.
    fresh, _, fresh_metrics = fit_clusters(later, CATS, CFG)
    assert fresh_metrics["ids_inherited"] == 0


def test_a_new_kind_of_customer_gets_a_new_id():
    _, centroids, _ = fit_clusters(blob_features(seed=1), CATS, CFG)
    three = blob_features(seed=3)
    three = three[~three["user_id"].isin([f"b{i:05d}" for i in range(400, 800)])]  # drop one kind
    _, centroids3, metrics = fit_clusters(three, CATS, CFG, previous=_previous(centroids))
    assert metrics["k"] == 3 and metrics["ids_inherited"] == 3
    assert set(centroids3["cluster_id"]) < set(centroids["cluster_id"])


def test_same_data_same_clusters():
    a, ca, _ = fit_clusters(blob_features(seed=4), CATS, CFG)
    b, cb, _ = fit_clusters(blob_features(seed=4), CATS, CFG)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ca, cb)


def test_warehouse_run_keeps_ids_and_stores_centroids():
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    simulate_warehouse(con, users=800, seed=4)
    cfg = ClusteringConfig(k_min=3, k_max=5, selection_sample=800, silhouette_sample=800)
    first = run_clustering(con, AS_OF, cfg, FeatureConfig())
    write_clusters(con, first, AS_OF)
    again = run_clustering(con, AS_OF + timedelta(days=1), cfg, FeatureConfig())
    assert again.metrics["ids_inherited"] == first.metrics["k"]
    # One day later recency and tenure moved a little: nearly everyone keeps their cluster id.
    assert again.metrics["users_same_cluster_share"] > 0.95
    write_clusters(con, again, AS_OF + timedelta(days=1))
    stored = con.execute("select count(distinct as_of), count(distinct cluster_id) "
                         "from intelligence_cluster_centroids").fetchall()[0]
    assert stored == (2, first.metrics["k"])
    out = con.execute("select * from customer_clusters").df()
    assert list(out.columns) == ["user_id", "cluster_id", "cluster_label", "distance", "as_of"]
    assert out["user_id"].is_unique and len(out) == 800
    assert np.isfinite(out["distance"]).all()


def test_too_few_users_is_reported_not_raised():
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    simulate_warehouse(con, users=10, seed=1)
    result = run_clustering(con, AS_OF, ClusteringConfig(), FeatureConfig())
    assert result.decision == "insufficient_data" and result.assignments.empty
    write_clusters(con, result, AS_OF)
    assert con.execute("select count(*) from customer_clusters").fetchall()[0][0] == 0
