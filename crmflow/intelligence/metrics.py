"""Ranking metrics for churn scores, and a paired bootstrap for "does the model beat the baseline"."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def lift_at(y: np.ndarray, score: np.ndarray, share: float = 0.1) -> float:
    """Churn rate among the top `share` by score divided by the overall churn rate.

    Ties at the cut are broken by a stable sort on -score, so the figure is reproducible.
    """
    n_top = max(1, int(round(len(y) * share)))
    order = np.argsort(-score, kind="stable")[:n_top]
    base = y.mean()
    return float(y[order].mean() / base) if base > 0 else float("nan")


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    if len(np.unique(y)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan"), "lift_top_decile": float("nan")}
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "lift_top_decile": lift_at(y, score, 0.1),
    }


def brier(y: np.ndarray, probability: np.ndarray) -> float:
    return float(brier_score_loss(y, probability)) if len(y) else float("nan")


def bootstrap_auc_gain(
    y: np.ndarray, model_score: np.ndarray, baseline_score: np.ndarray, rounds: int, seed: int
) -> np.ndarray:
    """ROC AUC(model) - ROC AUC(baseline) on `rounds` paired resamples of the validation rows.

    Resamples with a single class are skipped (AUC undefined there). A resample is the original rows
    weighted by how often each was drawn, so each score is ranked once up front and every round is
    two bincounts and a cumulative sum (O(n)) instead of two sorts in roc_auc_score; same values.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    y = np.asarray(y).astype(bool)
    model_groups = np.unique(model_score, return_inverse=True)[1].reshape(-1)
    base_groups = np.unique(baseline_score, return_inverse=True)[1].reshape(-1)
    gains = []
    for _ in range(rounds):  # a loop over resamples, not over users: each round is vectorised
        idx = rng.integers(0, n, n)
        yb = y[idx]
        if yb.min() == yb.max():
            continue
        drawn = np.bincount(idx, minlength=n).astype(float)
        gains.append(_weighted_auc(model_groups, y, drawn) - _weighted_auc(base_groups, y, drawn))
    return np.asarray(gains, dtype=float)


def _weighted_auc(groups: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
    """ROC AUC with sample weights; `groups` = rank of each row's score among the distinct scores.
    A positive beats every lower-scored negative and half-beats a tied one (as roc_auc_score)."""
    size = int(groups.max()) + 1 if len(groups) else 0
    pos = np.bincount(groups, weights=weight * y, minlength=size)
    neg = np.bincount(groups, weights=weight * ~y, minlength=size)
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
