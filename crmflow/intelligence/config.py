"""Model settings. Defaults are the documented behaviour (docs/intelligence.md); a typo is an error."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmflow.order_statuses import paid_order_statuses

# Order channels that count as "mobile" for the channel-mix feature.
DEFAULT_MOBILE_CHANNELS: tuple[str, ...] = ("app", "mobile", "mobile_app", "ios", "android")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureConfig(_Strict):
    # Order statuses that count as a purchase: the dbt var paid_order_statuses (dbt_project.yml).
    # Any other (refunded, cancelled, overdue) is ignored by every model, so a refunded order never
    # makes a customer look "active".
    paid_statuses: tuple[str, ...] = Field(default_factory=paid_order_statuses)
    mobile_channels: tuple[str, ...] = DEFAULT_MOBILE_CHANNELS
    # Category-share features: the top categories by revenue (the rest are "other").
    top_categories: int = Field(default=5, ge=0, le=20)


class ClusteringConfig(_Strict):
    k_min: int = Field(default=3, ge=2)
    k_max: int = Field(default=8, ge=2)
    seed: int = 42
    # k is chosen on a sample (silhouette is quadratic); the final fit uses at most fit_sample rows.
    selection_sample: int = Field(default=20_000, ge=100)
    silhouette_sample: int = Field(default=4_000, ge=100)
    fit_sample: int = Field(default=200_000, ge=100)
    # A new centroid inherits an old id only when it lies within this distance (standardised units).
    max_match_distance: float = Field(default=2.5, gt=0)
    # A centroid feature is named in the description when |z| exceeds this.
    describe_threshold: float = Field(default=0.5, gt=0)
    min_silhouette: float = 0.05
    min_users: int = Field(default=50, ge=2)

    @model_validator(mode="after")
    def _range(self) -> ClusteringConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"clustering: k_max ({self.k_max}) < k_min ({self.k_min})")
        return self


class ChurnConfig(_Strict):
    horizon_days: int = Field(default=60, ge=7)
    # purchase: churned = no paid order in the horizon; activity: no paid order and no event.
    label: Literal["purchase", "activity"] = "purchase"
    seed: int = 42
    fit_sample: int = Field(default=200_000, ge=100)
    min_train_rows: int = Field(default=200, ge=10)
    min_class_rows: int = Field(default=20, ge=2)
    # The model replaces the baseline only when the bootstrap lower bound of its ROC AUC gain over
    # the baseline exceeds min_auc_gain (one-sided, level below).
    min_auc_gain: float = 0.0
    bootstrap_rounds: int = Field(default=200, ge=20)
    bootstrap_level: float = Field(default=0.975, gt=0.5, lt=1.0)
    # Risk bands on the calibrated probability.
    high_threshold: float = Field(default=0.6, gt=0, lt=1)
    medium_threshold: float = Field(default=0.3, gt=0, lt=1)
    max_iter: int = Field(default=200, ge=10)
    learning_rate: float = Field(default=0.06, gt=0)
    max_leaf_nodes: int = Field(default=15, ge=2)
    min_samples_leaf: int = Field(default=40, ge=1)

    @model_validator(mode="after")
    def _bands(self) -> ChurnConfig:
        if self.medium_threshold >= self.high_threshold:
            raise ValueError("churn: medium_threshold must be below high_threshold")
        return self


class RecommendationConfig(_Strict):
    top_n: int = Field(default=5, ge=1, le=50)
    # Item-item similarities kept per item (sparsifies the similarity matrix).
    neighbours: int = Field(default=50, ge=1)
    # Fallback candidates per popularity list (more than top_n: some are already bought).
    fallback_depth: int = Field(default=15, ge=1)
    # Dense score cells per chunk (users x items); bounds memory at ~8 bytes x this.
    chunk_cells: int = Field(default=20_000_000, ge=10_000)
    eval_users: int = Field(default=50_000, ge=10)
    # Users scored per block (their rows are written before the next block): bounds memory.
    block_users: int = Field(default=100_000, ge=1)
    seed: int = 42


class PriorityConfig(_Strict):
    value_window_days: int = Field(default=365, ge=1)


class IntelligenceConfig(_Strict):
    # OpenMP/BLAS threads for fitting. 1 by default: on a shared 2-core box, spinning OpenMP workers
    # competing with other steps made fits 4x slower than one thread (measured).
    threads: int = Field(default=1, ge=1)
    # Retrain churn, refit clusters and re-run the recommendations' offline evaluation only when the
    # stored model is this many days old (or its parameters/code changed); runs in between load the
    # stored model and only score. 0 = train on every run.
    retrain_every_days: int = Field(default=7, ge=0)
    features: FeatureConfig = FeatureConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    churn: ChurnConfig = ChurnConfig()
    recommendations: RecommendationConfig = RecommendationConfig()
    priority: PriorityConfig = PriorityConfig()
