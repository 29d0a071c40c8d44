"""The intelligence steps give the same answers on DuckDB and PostgreSQL for the same input tables.

One simulated warehouse (600 users, 18 months, seeded) is written through the interface on both
engines; features, labels, then two runs of the four steps (day 0 trains, day 2 reuses the stored
models) must produce equal tables: order-independent, floats to 1e-9, timestamps as UTC instants.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_intelligence import AS_OF, load_tables, simulate_tables
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401  (fixtures)
from threadpoolctl import threadpool_limits

from crmflow.intelligence import steps
from crmflow.intelligence.config import ChurnConfig, ClusteringConfig, FeatureConfig, IntelligenceConfig
from crmflow.intelligence.features import build_features, churn_labels, staged_inputs
from crmflow.warehouse import Warehouse, open_warehouse

TABLES = simulate_tables(users=600, seed=5)
CFG = IntelligenceConfig(retrain_every_days=3, churn=ChurnConfig(max_iter=20, bootstrap_rounds=20),
                         clustering=ClusteringConfig(k_min=3, k_max=4, selection_sample=600, silhouette_sample=600))
OUTPUTS = {  # table -> key columns (rows sorted by them before comparing)
    "customer_clusters": ["user_id"],
    "customer_churn_scores": ["user_id"],
    "customer_recommendations": ["user_id", "rank"],
    "customer_priority": ["user_id"],
    "intelligence_cluster_centroids": ["as_of", "cluster_id", "feature"],
}


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    with open_warehouse(tmp_path / "w.duckdb") as warehouse:
        yield warehouse


@pytest.fixture
def both(duckdb_warehouse: Warehouse, postgres_warehouse: Warehouse) -> dict[str, Warehouse]:  # noqa: F811
    for wh in (duckdb_warehouse, postgres_warehouse):
        load_tables(wh, TABLES)
    return {"duckdb": duckdb_warehouse, "postgres": postgres_warehouse}


def assert_frames_equal(left: pd.DataFrame, right: pd.DataFrame, keys: list[str], what: str) -> None:
    left = left.sort_values(keys, kind="stable").reset_index(drop=True)
    right = right.sort_values(keys, kind="stable").reset_index(drop=True)
    assert list(left.columns) == list(right.columns), what
    assert len(left) == len(right), f"{what}: {len(left)} rows on DuckDB, {len(right)} on PostgreSQL"
    for column in left.columns:
        a, b = left[column], right[column]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=0, atol=1e-9,
                                       err_msg=f"{what}.{column}")
        elif pd.api.types.is_datetime64_any_dtype(a):
            assert (a.dt.tz_convert("UTC") == b.dt.tz_convert("UTC")).all(), f"{what}.{column}"
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), f"{what}.{column}"


def test_features_and_labels_are_equal_on_both_engines(both):
    cutoff = AS_OF - timedelta(days=60)
    frames = {}
    for name, wh in both.items():
        with staged_inputs(wh, AS_OF, FeatureConfig()) as staged:
            got = {(pop, cut): build_features(wh, cut, FeatureConfig(), pop, staged=staged)
                   for pop in ("all", "purchasers", "active") for cut in (AS_OF, cutoff)}
        frames[name] = got
    for key, duck in frames["duckdb"].items():
        pg = frames["postgres"][key]
        assert pg.categories == duck.categories and len(duck.frame) > 100
        # Same rows in the same order (the order the fits see), same values.
        assert pg.frame["user_id"].tolist() == duck.frame["user_id"].tolist()
        assert_frames_equal(duck.frame, pg.frame, ["user_id"], f"features {key}")
    users = frames["duckdb"][("purchasers", cutoff)].frame["user_id"]
    labels = {n: churn_labels(wh, users, cutoff, 60, FeatureConfig(), "activity") for n, wh in both.items()}
    np.testing.assert_array_equal(labels["duckdb"], labels["postgres"])
    assert 0 < labels["duckdb"].mean() < 1


def test_steps_write_equal_tables_on_both_engines(both, tmp_path):
    def run(wh: Warehouse, day: int, models: Path) -> dict[str, str]:
        as_of = AS_OF + timedelta(days=day)
        with threadpool_limits(1):
            decisions = {
                "clusters": steps.clustering_step(wh, as_of, CFG, models).decision,
                "churn": steps.churn_step(wh, as_of, CFG, models)[0].decision,
                "recommendations": steps.recommendations_step(wh, as_of, CFG).decision,
                "priority": steps.priority_step(wh, as_of, CFG).decision,
            }
        return decisions

    for day in (0, 2):
        decisions = {name: run(wh, day, tmp_path / name / "models") for name, wh in both.items()}
        if day == 0:  # a dbt view over each output (as int_segment_memberships over customer_clusters):
            for wh in both.values():  # PostgreSQL then forbids dropping the table, so runs must not drop it
                for table in list(OUTPUTS)[:4]:
                    wh.execute(f"create view {table}_reader as select user_id from {table}")
        assert decisions["duckdb"] == decisions["postgres"]
        assert decisions["duckdb"]["churn"] in ("model", "baseline")
        for table, keys in OUTPUTS.items():
            duck, pg = (wh.fetch_arrow(table).to_pandas() for wh in both.values())
            assert len(duck) > 0, table
            assert_frames_equal(duck, pg, keys, f"day {day} {table}")
        runs = "select model_name, model_version, as_of, decision, fit, trained_as_of, signature from " \
               "intelligence_model_runs"
        duck, pg = (wh.fetch_arrow(runs).to_pandas() for wh in both.values())
        assert_frames_equal(duck, pg, ["model_name", "as_of"], f"day {day} intelligence_model_runs")
    assert set(duck.loc[duck["as_of"] == AS_OF + timedelta(days=2), "fit"]) == {"reused"}
