"""Churn propensity: beats the baseline on data with signal, falls back to it on noise."""

import duckdb
import numpy as np
import pytest
from helpers_intelligence import AS_OF, simulate_warehouse
from threadpoolctl import threadpool_limits

from crmflow.intelligence.churn import SCORE_COLUMNS, baseline_score, risk_band, train_and_score
from crmflow.intelligence.config import ChurnConfig, FeatureConfig

# Fewer boosting rounds and bootstrap resamples than production: same code paths, a third of the time.
CFG = ChurnConfig(max_iter=80, bootstrap_rounds=100)


def _warehouse(**kwargs) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    simulate_warehouse(con, **kwargs)
    return con


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The assets fit with one OpenMP thread (IntelligenceConfig.threads); the tests do the same.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def signal_result(one_thread):
    con = _warehouse(users=1500, seed=11, signal=True)
    yield con, train_and_score(con, AS_OF, CFG, FeatureConfig())
    con.close()


def test_model_beats_days_since_last_purchase_on_data_with_signal(signal_result):
    _, result = signal_result
    m, b = result.metrics["model"], result.metrics["baseline"]
    assert result.decision == "model", result.reason
    assert m["roc_auc"] > b["roc_auc"] and m["pr_auc"] > b["pr_auc"]
    assert result.metrics["auc_gain_lower_bound"] > 0
    assert m["lift_top_decile"] >= 1.0
    # Calibrated: the mean probability on the validation cutoff is near the observed churn rate.
    assert m["brier"] < b["brier"]


def test_scores_follow_the_contract(signal_result):
    con, result = signal_result
    scores = result.scores
    assert tuple(scores.columns) == SCORE_COLUMNS
    assert scores["user_id"].is_unique
    assert scores["churn_probability"].between(0, 1).all()
    assert set(scores["risk_band"]) <= {"high", "medium", "low"}
    assert (scores["scored_at"] == AS_OF).all()
    # Everyone with a paid order before the as-of time is scored, nobody else.
    buyers = con.execute("select count(distinct user_id) from stg_shop__orders where ordered_at < $a "
                         "and status = 'paid'", {"a": AS_OF}).fetchall()[0][0]
    assert len(scores) == buyers


def test_same_data_same_scores(signal_result):
    con, first = signal_result
    second = train_and_score(con, AS_OF, CFG, FeatureConfig())
    assert second.decision == first.decision
    np.testing.assert_array_equal(first.scores["churn_probability"], second.scores["churn_probability"])


def test_noise_falls_back_to_the_calibrated_baseline():
    con = _warehouse(users=2000, seed=5, signal=False)
    result = train_and_score(con, AS_OF, CFG, FeatureConfig())
    assert result.decision == "baseline", result.reason
    assert "does not reliably beat" in result.reason
    assert result.metrics["auc_gain_lower_bound"] <= 0
    # The written probabilities are the baseline's: a monotone (non-decreasing) function of recency.
    from crmflow.intelligence.features import build_features

    feats = build_features(con, AS_OF, FeatureConfig(), "purchasers")
    expected = result.artifact["baseline"].predict(baseline_score(feats.frame))
    np.testing.assert_allclose(result.scores["churn_probability"], expected)
    order = np.argsort(baseline_score(feats.frame))
    assert np.all(np.diff(result.scores["churn_probability"].to_numpy()[order]) >= -1e-12)
    assert result.artifact["model"] is None and result.artifact["challenger"] is not None


def test_tiny_or_empty_warehouse_does_not_crash():
    con = _warehouse(users=40, seed=2)
    tiny = train_and_score(con, AS_OF, CFG, FeatureConfig())
    assert tiny.decision in {"baseline", "insufficient_data"}
    assert tiny.decision == "insufficient_data" or len(tiny.scores) > 0
    empty = duckdb.connect()
    nothing = train_and_score(empty, AS_OF, CFG, FeatureConfig())
    assert nothing.decision == "insufficient_data" and "missing input tables" in nothing.reason
    assert tuple(nothing.scores.columns) == SCORE_COLUMNS and nothing.scores.empty


def test_risk_bands_use_the_documented_thresholds():
    cfg = ChurnConfig(high_threshold=0.6, medium_threshold=0.3)
    assert risk_band(np.array([0.0, 0.29, 0.3, 0.59, 0.6, 1.0]), cfg).tolist() == [
        "low", "low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError):
        ChurnConfig(high_threshold=0.3, medium_threshold=0.5)
