"""Churn propensity: who will not buy (or not be active) in the next `horizon_days`.

Time-based split, no leakage: a model is fitted on features at cutoff_train = as_of - 2H with labels
from [cutoff_train, cutoff_train + H), validated on features at cutoff_valid = as_of - H with labels
from [cutoff_valid, as_of), and scores features at as_of. It replaces the obvious rule ("the longer
since the last purchase, the likelier the churn") only when a paired bootstrap shows it ranks better
on the validation cutoff; otherwise the rule's calibrated probability is what gets written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from crmflow.intelligence.config import ChurnConfig, FeatureConfig
from crmflow.intelligence.features import FEATURE_INPUTS, build_features, churn_labels, staged_inputs
from crmflow.intelligence.metrics import bootstrap_auc_gain, brier, ranking_metrics
from crmflow.intelligence.tables import CHURN_SCHEMA, CHURN_SCORES, missing_inputs, replace_output
from crmflow.warehouse import Warehouse, as_warehouse

SCORE_COLUMNS = ("user_id", "churn_probability", "risk_band", "model_version", "scored_at")


@dataclass
class ChurnResult:
    scores: pd.DataFrame
    decision: str  # model | baseline | insufficient_data
    reason: str
    model_version: str
    cutoff_train: datetime
    cutoff_valid: datetime
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: dict[str, Any] = field(default_factory=dict)

    @property
    def model_beats_baseline(self) -> bool:
        return self.decision == "model"


def baseline_score(frame: pd.DataFrame) -> np.ndarray:
    """Days since the last paid order; never-purchasers count from sign-up."""
    recency = frame["recency_days"].to_numpy(dtype=float)
    return np.where(np.isnan(recency), frame["tenure_days"].to_numpy(dtype=float), recency)


def risk_band(probability: np.ndarray, cfg: ChurnConfig) -> np.ndarray:
    return np.where(
        probability >= cfg.high_threshold, "high", np.where(probability >= cfg.medium_threshold, "medium", "low")
    ).astype(object)


def _model(cfg: ChurnConfig, n_rows: int) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=min(cfg.min_samples_leaf, max(1, n_rows // 20)),
        l2_regularization=1.0,
        early_stopping=False,  # fixed number of rounds: reproducible, no random validation split
        random_state=cfg.seed,
    )
    # Isotonic needs enough rows per fold to be smooth; Platt scaling is safer on small data.
    method = "isotonic" if n_rows >= 3000 else "sigmoid"
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=cfg.seed)
    # ensemble=False: the calibrator learns from out-of-fold predictions and one booster fitted on all
    # rows does the predicting. One more fit than the default ensemble of three, but every score costs
    # one booster instead of three, and scoring (every customer, every run) outweighs fitting (a
    # sample, on the retraining cadence).
    return CalibratedClassifierCV(booster, method=method, cv=folds, ensemble=False)


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c == "churn_probability" else object) for c in SCORE_COLUMNS})


def train_and_score(
    con: Warehouse | object,
    as_of: datetime,
    cfg: ChurnConfig,
    features_cfg: FeatureConfig,
    version_of: Any = None,
) -> ChurnResult:
    """Fit, validate against the baseline, and score every user in the population at `as_of`.

    `version_of(decision, params)` returns the version string (injected so this module stays pure);
    by default a plain label is used.
    """
    wh = as_warehouse(con)
    horizon = timedelta(days=cfg.horizon_days)
    cutoff_train, cutoff_valid = as_of - 2 * horizon, as_of - horizon
    params = {"churn": cfg.model_dump(), "features": features_cfg.model_dump()}

    def version(decision: str) -> str:
        return version_of(decision, params) if version_of else f"churn-{decision}"

    def result(scores: pd.DataFrame, decision: str, reason: str, **extra: Any) -> ChurnResult:
        return ChurnResult(scores=scores, decision=decision, reason=reason, model_version=version(decision),
                           cutoff_train=cutoff_train, cutoff_valid=cutoff_valid, **extra)

    missing = missing_inputs(wh, FEATURE_INPUTS)
    if missing:
        return result(_empty_scores(), "insufficient_data", f"missing input tables: {', '.join(missing)}")

    population = "purchasers" if cfg.label == "purchase" else "active"
    with staged_inputs(wh, as_of, features_cfg) as staged:  # one pass over the inputs for three cutoffs
        train = build_features(wh, cutoff_train, features_cfg, population, staged=staged)
        valid = build_features(wh, cutoff_valid, features_cfg, population, categories=train.categories,
                               staged=staged)
        score = build_features(wh, as_of, features_cfg, population, categories=train.categories, staged=staged)
    y_train = churn_labels(wh, train.frame["user_id"], cutoff_train, cfg.horizon_days, features_cfg, cfg.label)
    y_valid = churn_labels(wh, valid.frame["user_id"], cutoff_valid, cfg.horizon_days, features_cfg, cfg.label)

    metrics: dict[str, Any] = {
        "cutoff_train": cutoff_train.isoformat(),
        "cutoff_valid": cutoff_valid.isoformat(),
        "horizon_days": cfg.horizon_days,
        "label": cfg.label,
        "train_rows": int(len(y_train)),
        "train_churn_rate": float(y_train.mean()) if len(y_train) else None,
        "valid_rows": int(len(y_valid)),
        "valid_churn_rate": float(y_valid.mean()) if len(y_valid) else None,
        "scored_rows": int(len(score.frame)),
    }
    if len(score.frame) == 0:
        return result(_empty_scores(), "insufficient_data", "no customers to score", metrics=metrics)

    train_classes = np.bincount(y_train, minlength=2) if len(y_train) else np.zeros(2, dtype=int)
    if train_classes.min() < 2:
        return result(_empty_scores(), "insufficient_data",
                      f"training cutoff {cutoff_train.date()} has {train_classes[1]} churned and "
                      f"{train_classes[0]} retained customers: nothing to calibrate on", metrics=metrics)

    # The baseline is always fitted: it is the fallback and the yardstick.
    baseline = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    baseline.fit(baseline_score(train.frame), y_train)
    # Model and baseline are compared on the same rows: at most fit_sample validation customers (a
    # fixed-seed sample), so the validation predictions do not grow with the customer count.
    check_rows = _sample(len(y_valid), cfg.fit_sample, cfg.seed + 1)
    y_valid = y_valid[check_rows]
    valid_frame = valid.frame.iloc[check_rows]
    metrics["validation_sample_rows"] = int(len(check_rows))
    valid_base = baseline_score(valid_frame)
    metrics["baseline"] = {**ranking_metrics(y_valid, valid_base),
                           "brier": brier(y_valid, baseline.predict(valid_base)) if len(y_valid) else None}

    model = None
    valid_classes = np.bincount(y_valid, minlength=2) if len(y_valid) else np.zeros(2, dtype=int)
    if len(y_train) < cfg.min_train_rows or train_classes.min() < cfg.min_class_rows:
        decision, reason = "baseline", (
            f"too little training data ({len(y_train)} rows, {train_classes.min()} in the smaller class; "
            f"need {cfg.min_train_rows} and {cfg.min_class_rows}): using the days-since-last-purchase baseline")
    elif valid_classes.min() < cfg.min_class_rows:
        decision, reason = "baseline", (
            f"validation cutoff has only {valid_classes.min()} customers in the smaller class: the model "
            f"cannot be checked against the baseline, so the baseline is used")
    else:
        rows = _sample(len(y_train), cfg.fit_sample, cfg.seed)
        model_features = informative_features(train.frame.loc[rows], train.feature_names)
        metrics["features_without_values"] = sorted(set(train.feature_names) - set(model_features))
        x_train = train.frame.loc[rows, model_features].to_numpy()
        model = _model(cfg, len(rows)).fit(x_train, y_train[rows])
        valid_prob = model.predict_proba(valid_frame[model_features].to_numpy())[:, 1]
        metrics["model"] = {**ranking_metrics(y_valid, valid_prob), "brier": brier(y_valid, valid_prob)}
        gains = bootstrap_auc_gain(y_valid, valid_prob, valid_base, cfg.bootstrap_rounds, cfg.seed)
        lower = float(np.quantile(gains, 1 - cfg.bootstrap_level)) if len(gains) else float("nan")
        metrics["auc_gain"] = metrics["model"]["roc_auc"] - metrics["baseline"]["roc_auc"]
        metrics["auc_gain_lower_bound"] = lower
        metrics["bootstrap_level"] = cfg.bootstrap_level
        if np.isfinite(lower) and lower > cfg.min_auc_gain:
            decision, reason = "model", (
                f"model ROC AUC {metrics['model']['roc_auc']:.3f} beats the baseline's "
                f"{metrics['baseline']['roc_auc']:.3f} (gain lower bound {lower:.3f})")
        else:
            decision, reason = "baseline", (
                f"model ROC AUC {metrics['model']['roc_auc']:.3f} does not reliably beat the baseline's "
                f"{metrics['baseline']['roc_auc']:.3f} (gain lower bound {lower:.3f} <= {cfg.min_auc_gain}): "
                f"scores come from the days-since-last-purchase baseline")

    if metrics.get("features_without_values"):
        reason += ("; left out of the model, no customer has a value: "
                   + ", ".join(metrics["features_without_values"]))
    ver = version(decision)
    model_features = model_features if model is not None else list(train.feature_names)
    scores = _score(score.frame, model if decision == "model" else None, baseline, model_features, ver, as_of, cfg)
    metrics["risk_bands"] = _bands(scores)
    artifact = {
        "model": model if decision == "model" else None,
        "challenger": model,
        "baseline": baseline,
        "feature_names": list(train.feature_names),
        "model_features": model_features,
        "categories": list(train.categories),
        "params": params,
        "metrics": metrics,
        "decision": decision,
    }
    return result(scores, decision, reason, metrics=metrics, artifact=artifact)


def informative_features(frame: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    """The features with at least one value in the training rows. A column that is NaN for everyone
    (no events at all: days_since_last_event) carries nothing, and HistGradientBoosting's binning
    raises a ValueError on it, so it is left out of the model (and reported in the metrics)."""
    return [name for name in names if frame[name].notna().any()]


def _score(frame: pd.DataFrame, model: Any, baseline: IsotonicRegression, feature_names: list[str], version: str,
           as_of: datetime, cfg: ChurnConfig) -> pd.DataFrame:
    if model is not None:
        probability = model.predict_proba(frame[feature_names].to_numpy())[:, 1]
    else:
        probability = baseline.predict(baseline_score(frame))
    probability = np.clip(probability.astype(float), 0.0, 1.0)
    return pd.DataFrame({
        "user_id": frame["user_id"].to_numpy(),
        "churn_probability": probability,
        "risk_band": risk_band(probability, cfg),
        "model_version": version,
        "scored_at": as_of,
    })


def _bands(scores: pd.DataFrame) -> dict[str, int]:
    return {b: int((scores["risk_band"] == b).sum()) for b in ("high", "medium", "low")}


def score_with_stored(
    con: Warehouse | object, as_of: datetime, cfg: ChurnConfig, features_cfg: FeatureConfig,
    artifact: dict[str, Any], model_version: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score every user at `as_of` with a stored artefact (no features at past cutoffs, no fit).

    Uses the artefact's chosen model (or its baseline when the baseline was chosen) and its category
    columns, so the features line up with what the model was trained on.
    """
    population = "purchasers" if cfg.label == "purchase" else "active"
    score = build_features(con, as_of, features_cfg, population, categories=tuple(artifact["categories"]))
    if list(score.feature_names) != list(artifact["feature_names"]):
        raise ValueError(f"churn: stored model {model_version} expects features {artifact['feature_names']}, "
                         f"the warehouse gives {list(score.feature_names)}")
    # artefacts stored before model_features existed were fitted on every feature
    model_features = list(artifact.get("model_features", artifact["feature_names"]))
    scores = _score(score.frame, artifact["model"] if artifact["decision"] == "model" else None,
                    artifact["baseline"], model_features, model_version, as_of, cfg)
    return scores, {"scored_rows": int(len(scores)), "risk_bands": _bands(scores)}


def write_churn_scores(con: Warehouse | object, scores: pd.DataFrame) -> None:
    """Replace customer_churn_scores (call inside the step's transaction)."""
    replace_output(as_warehouse(con), CHURN_SCORES, scores, CHURN_SCHEMA)
