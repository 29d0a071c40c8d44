"""Customer intelligence assets: clusters, churn scores, recommendations and follow-up priority.

Thin wrappers over crmflow.intelligence.steps; each reports its quality against a simple baseline
as metadata and as asset checks. They read the dbt marts, so they depend on those asset keys.
"""

import json
from typing import TYPE_CHECKING, Any

import dagster as dg

from crmflow.intelligence.config import (
    ChurnConfig,
    ClusteringConfig,
    IntelligenceConfig,
    RecommendationConfig,
)
from orchestration.asof import as_of_from_context
from orchestration.lineage import exposure_deps
from orchestration.resources import WarehouseResource

if TYPE_CHECKING:
    from crmflow.intelligence.steps import StepSummary

# The steps, checks and model store (pandas, scikit-learn, joblib) are imported in the assets'
# bodies, not here: the definitions load without them (issue 20).

GROUP = "intelligence"
# Each asset's inputs: its dbt exposure (dbt_project/models/_python_assets__exposures.yml).


class ClusteringRunConfig(dg.Config):
    k_min: int = 3
    k_max: int = 8
    retrain_every_days: int = 7  # refit when the stored model is this old; 0 = every run


class ChurnRunConfig(dg.Config):
    horizon_days: int = 60
    label: str = "purchase"  # purchase | activity
    max_iter: int = 200  # boosting rounds
    retrain_every_days: int = 7  # retrain when the stored model is this old; 0 = every run


class RecommendationRunConfig(dg.Config):
    top_n: int = 5
    retrain_every_days: int = 7  # re-run the offline evaluation when it is this old; 0 = every run


def _metadata(summary: "StepSummary") -> dict[str, Any]:
    from crmflow.intelligence import model_store

    meta: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(summary.rows),
        "decision": dg.MetadataValue.text(summary.decision),
        "summary": dg.MetadataValue.text(summary.reason),
        "metrics": dg.MetadataValue.json(json.loads(json.dumps(model_store.json_safe(summary.metrics),
                                                               default=str))),
    }
    if summary.model_version:
        meta["model_version"] = dg.MetadataValue.text(summary.model_version)
    if summary.artifact_path:
        meta["artifact"] = dg.MetadataValue.path(str(summary.artifact_path))
    return meta


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value == value else None


@dg.asset(
    group_name=GROUP,
    deps=exposure_deps("customer_clusters"),
    description="One cluster per customer (RFM, tenure, category and channel mix, engagement), with ids kept "
    "stable across runs and a readable label; centroids in intelligence_cluster_centroids.",
    check_specs=[
        dg.AssetCheckSpec("clusters_contract", asset="customer_clusters"),
        dg.AssetCheckSpec("clusters_separated", asset="customer_clusters",
                          description="Silhouette at least the configured minimum (random labels score ~0)."),
    ],
)
def customer_clusters(context: dg.AssetExecutionContext, config: ClusteringRunConfig, warehouse: WarehouseResource):
    from crmflow.intelligence import checks, model_store
    from crmflow.intelligence.steps import clustering_step

    cfg = IntelligenceConfig(clustering=ClusteringConfig(k_min=config.k_min, k_max=config.k_max),
                             retrain_every_days=config.retrain_every_days)
    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        summary = clustering_step(wh, as_of, cfg, model_store.model_dir(warehouse.path))
        passed, details = checks.clusters_contract(wh)
    context.log.info(f"customer_clusters: {summary.reason}")
    meta = _metadata(summary)
    silhouette = _num(summary.metrics.get("silhouette"))
    if silhouette is not None:
        meta["silhouette"] = dg.MetadataValue.float(silhouette)
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name="clusters_contract", passed=passed, metadata=details)
    yield dg.AssetCheckResult(
        check_name="clusters_separated",
        passed=silhouette is not None and silhouette >= cfg.clustering.min_silhouette,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"silhouette": silhouette if silhouette is not None else -1.0,
                  "minimum": cfg.clustering.min_silhouette, "decision": summary.decision},
    )


@dg.asset(
    group_name=GROUP,
    deps=exposure_deps("customer_churn_scores"),
    description="Calibrated probability of no paid order in the next horizon (default 60 days); falls back to "
    "the days-since-last-purchase baseline when the model does not beat it.",
    check_specs=[
        dg.AssetCheckSpec("churn_scores_contract", asset="customer_churn_scores"),
        dg.AssetCheckSpec("churn_model_beats_baseline", asset="customer_churn_scores",
                          description="Fails when the scores come from the baseline (model not better, or "
                          "too little data to train)."),
    ],
)
def customer_churn_scores(context: dg.AssetExecutionContext, config: ChurnRunConfig, warehouse: WarehouseResource):
    from crmflow.intelligence import checks, model_store
    from crmflow.intelligence.steps import churn_step

    if config.label not in ("purchase", "activity"):
        raise dg.Failure(f"churn label must be 'purchase' or 'activity', got {config.label!r}")
    cfg = IntelligenceConfig(churn=ChurnConfig(horizon_days=config.horizon_days, label=config.label,
                                                 max_iter=config.max_iter),
                             retrain_every_days=config.retrain_every_days)
    as_of = as_of_from_context(context)
    models = model_store.model_dir(warehouse.path)
    with warehouse.open() as wh:
        summary, result = churn_step(wh, as_of, cfg, models)
        passed, details = checks.churn_contract(wh)
    context.log.info(f"customer_churn_scores: {summary.decision}: {summary.reason}")
    meta = _metadata(summary)
    for who in ("model", "baseline"):
        for name, value in result.metrics.get(who, {}).items():
            if _num(value) is not None:
                meta[f"{who}_{name}"] = dg.MetadataValue.float(_num(value))
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name="churn_scores_contract", passed=passed, metadata=details)
    yield dg.AssetCheckResult(
        check_name="churn_model_beats_baseline",
        passed=result.model_beats_baseline,
        severity=dg.AssetCheckSeverity.ERROR,
        description=summary.reason,
        metadata={"decision": summary.decision,
                  "model_roc_auc": _num(result.metrics.get("model", {}).get("roc_auc")) or -1.0,
                  "baseline_roc_auc": _num(result.metrics.get("baseline", {}).get("roc_auc")) or -1.0,
                  "auc_gain_lower_bound": _num(result.metrics.get("auc_gain_lower_bound")) or -1.0},
    )


@dg.asset(
    group_name=GROUP,
    deps=exposure_deps("customer_recommendations"),
    description="Top-N products per customer: co-purchase similarity, then popular in the customer's cluster, "
    "then popular overall; never an item already bought.",
    check_specs=[
        dg.AssetCheckSpec("recommendations_contract", asset="customer_recommendations"),
        dg.AssetCheckSpec("recommendations_beat_popularity", asset="customer_recommendations",
                          description="Hit-rate@N on each customer's held-out last order above plain popularity."),
    ],
)
def customer_recommendations(
    context: dg.AssetExecutionContext, config: RecommendationRunConfig, warehouse: WarehouseResource
):
    from crmflow.intelligence import checks
    from crmflow.intelligence.steps import recommendations_step

    cfg = IntelligenceConfig(recommendations=RecommendationConfig(top_n=config.top_n),
                             retrain_every_days=config.retrain_every_days)
    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        summary = recommendations_step(wh, as_of, cfg)
        passed, details = checks.recommendations_contract(wh, config.top_n)
    context.log.info(f"customer_recommendations: {summary.reason}")
    meta = _metadata(summary)
    n = config.top_n
    for key in (f"hit_rate_at_{n}", f"recall_at_{n}", f"baseline_hit_rate_at_{n}", f"baseline_recall_at_{n}"):
        if _num(summary.metrics.get(key)) is not None:
            meta[key] = dg.MetadataValue.float(_num(summary.metrics[key]))
    yield dg.MaterializeResult(metadata=meta)
    yield dg.AssetCheckResult(check_name="recommendations_contract", passed=passed, metadata=details)
    yield dg.AssetCheckResult(
        check_name="recommendations_beat_popularity",
        passed=bool(summary.metrics.get("beats_popularity", False)),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"eval_users": int(summary.metrics.get("eval_users", 0))},
    )


@dg.asset(
    group_name=GROUP,
    deps=exposure_deps("customer_priority"),
    description="Operator follow-up order: value at risk = churn probability x trailing 12-month revenue.",
    check_specs=[dg.AssetCheckSpec("priority_contract", asset="customer_priority")],
)
def customer_priority(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    from crmflow.intelligence import checks
    from crmflow.intelligence.steps import priority_step

    cfg = IntelligenceConfig()
    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        summary = priority_step(wh, as_of, cfg)
        passed, details = checks.priority_contract(wh)
    context.log.info(f"customer_priority: {summary.reason}")
    yield dg.MaterializeResult(metadata=_metadata(summary))
    yield dg.AssetCheckResult(check_name="priority_contract", passed=passed, metadata=details)


intelligence_assets = [customer_clusters, customer_churn_scores, customer_recommendations, customer_priority]
