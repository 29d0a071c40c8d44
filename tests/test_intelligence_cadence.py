"""Retraining cadence: runs inside the window reuse the stored models, later runs retrain."""

from datetime import timedelta

import duckdb
from helpers_intelligence import AS_OF, simulate_warehouse

from crmflow.intelligence import steps
from crmflow.intelligence.config import ChurnConfig, ClusteringConfig, IntelligenceConfig


def _runs(con: duckdb.DuckDBPyConnection, day: int) -> dict[str, tuple]:
    rows = con.execute("select model_name, fit, model_version, trained_as_of from intelligence_model_runs "
                       "where as_of = ?", [AS_OF + timedelta(days=day)]).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_stored_models_are_reused_inside_the_window_and_retrained_after(tmp_path):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    simulate_warehouse(con, users=600, seed=5)
    cfg = IntelligenceConfig(retrain_every_days=3, churn=ChurnConfig(max_iter=20, bootstrap_rounds=20),
                             clustering=ClusteringConfig(k_min=3, k_max=4, selection_sample=600,
                                                         silhouette_sample=600))

    def run(day: int, config: IntelligenceConfig = cfg) -> None:
        as_of = AS_OF + timedelta(days=day)
        steps.clustering_step(con, as_of, config, tmp_path)
        steps.churn_step(con, as_of, config, tmp_path)
        steps.recommendations_step(con, as_of, config)

    run(0)
    first = _runs(con, 0)
    assert {name: r[0] for name, r in first.items()} == dict.fromkeys(first, "trained")
    clusters_day0 = con.execute("select count(*) from customer_clusters").fetchall()[0][0]
    run(2)  # inside the window: same models, everyone still scored
    reused = _runs(con, 2)
    for name in ("churn", "clustering", "recommendations"):
        assert reused[name][0] == "reused" and reused[name][1] == first[name][1], name
        assert reused[name][2] == first[name][2]
    assert con.execute("select count(*) from customer_clusters").fetchall()[0][0] >= clusters_day0
    assert con.execute("select count(distinct model_version), min(scored_at) from customer_churn_scores"
                       ).fetchall()[0] == (1, AS_OF + timedelta(days=2))
    assert con.execute("select count(*) from customer_recommendations").fetchall()[0][0] > 0
    run(3)  # the window (3 days) is over: retrain
    assert {r[0] for r in _runs(con, 3).values()} == {"trained"}
    run(4, cfg.model_copy(update={"retrain_every_days": 0}))  # 0 = every run
    assert {r[0] for r in _runs(con, 4).values()} == {"trained"}
    changed = cfg.model_copy(update={"churn": ChurnConfig(max_iter=21, bootstrap_rounds=20)})
    run(5, changed)  # new parameters: the stored churn model does not fit them
    day5 = _runs(con, 5)
    assert day5["churn"][0] == "trained" and day5["clustering"][0] == "reused"
