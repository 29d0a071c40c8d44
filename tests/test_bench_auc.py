"""Performance fix guard: the O(n)-per-round bootstrap AUC gain equals sklearn's roc_auc_score on
each resample, ties included."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from crmflow.intelligence.metrics import bootstrap_auc_gain


def test_bootstrap_gain_matches_roc_auc_score_on_every_resample() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    y = (rng.random(n) < 0.2).astype(int)
    model = np.round(rng.random(n) + 0.4 * y, 2)  # many ties
    baseline = rng.integers(0, 50, n).astype(float) - 5 * y
    gains = bootstrap_auc_gain(y, model, baseline, rounds=40, seed=11)
    replay = np.random.default_rng(11)
    expected = []
    for _ in range(40):
        idx = replay.integers(0, n, n)
        expected.append(roc_auc_score(y[idx], model[idx]) - roc_auc_score(y[idx], baseline[idx]))
    np.testing.assert_allclose(gains, expected, rtol=0, atol=1e-12)


def test_single_class_resamples_are_skipped() -> None:
    y = np.array([1, 0])
    gains = bootstrap_auc_gain(y, np.array([0.9, 0.1]), np.array([0.1, 0.9]), rounds=30, seed=0)
    assert 0 < len(gains) < 30 and set(np.round(gains, 9)) == {1.0}
