"""One function per intelligence output: compute, write the table, store the model run.

The Dagster assets call these and only translate the returned summaries into metadata and checks.
Each step brings the schema up to date (apply_migrations), computes outside any transaction, then
writes its output table(s) and its intelligence_model_runs row in one transaction: a reader sees the
previous run's tables or this run's, never half of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadpoolctl import threadpool_limits

from crmflow.intelligence import model_store
from crmflow.intelligence.config import IntelligenceConfig
from crmflow.intelligence.priority import build_priority
from crmflow.intelligence.tables import RECOMMENDATIONS, RECOMMENDATIONS_SCHEMA, output_relation, replace_output
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

if TYPE_CHECKING:
    from crmflow.intelligence.churn import ChurnResult  # noqa: F401

# The model modules (scikit-learn, scipy) are imported inside the steps: importing them costs ~5 s,
# and the Dagster definitions import this module on every load (target: definitions load <= 5 s).


@dataclass
class StepSummary:
    table: str
    rows: int
    decision: str
    reason: str
    model_version: str | None = None
    artifact_path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def clustering_step(
    con: Warehouse | object, as_of: datetime, cfg: IntelligenceConfig, models: Path | None = None
) -> StepSummary:
    """Refit (first run, stored model `retrain_every_days` old, or no model folder) or assign only."""
    from crmflow.intelligence.clustering import run_clustering, write_clusters

    wh = as_warehouse(con)
    apply_migrations(wh)
    params = {"clustering": cfg.clustering.model_dump(), "features": cfg.features.model_dump()}
    sig = model_store.signature("clustering", params)
    stored = model_store.reusable_run(wh, "clustering", as_of, sig, cfg.retrain_every_days) if models else None
    with threadpool_limits(cfg.threads):
        result = run_clustering(wh, as_of, cfg.clustering, cfg.features,
                                model_store.load_artifact(stored.artifact_path) if stored else None)
    if stored is not None:
        version, path, fit = stored.model_version, Path(stored.artifact_path), "reused"
        result.reason += f"; stored model from {stored.trained_as_of.date()} reused"
    else:
        version, fit = model_store.model_version("clustering", cfg.clustering.model_dump(), as_of), "trained"
        path = model_store.save_artifact(models, version, result.model) if models and result.model else None
    result.metrics["fit"] = fit
    with wh.transaction():
        write_clusters(wh, result, as_of)
        model_store.record_run(wh, model_name="clustering", model_version=version, as_of=as_of,
                               data_cutoff=stored.trained_as_of if stored else as_of, decision=result.decision,
                               params=cfg.clustering.model_dump(), metrics=result.metrics, artifact_path=path,
                               fit=fit, trained_as_of=stored.trained_as_of if stored else as_of, sig=sig)
    return StepSummary("customer_clusters", len(result.assignments), result.decision, result.reason, version,
                       path, metrics=result.metrics)


def churn_step(
    con: Warehouse | object, as_of: datetime, cfg: IntelligenceConfig, models: Path
) -> tuple[StepSummary, ChurnResult]:
    """Train (first run, or when the stored model is `retrain_every_days` old) and score, or score only."""
    def version_of(decision: str, params: dict[str, Any]) -> str:
        name = "churn" if decision == "model" else f"churn_{decision}"
        return model_store.model_version(name, params, as_of)

    from crmflow.intelligence.churn import ChurnResult, score_with_stored, train_and_score, write_churn_scores

    wh = as_warehouse(con)
    apply_migrations(wh)
    sig = model_store.signature("churn", {"churn": cfg.churn.model_dump(), "features": cfg.features.model_dump()})
    stored = model_store.reusable_run(wh, "churn", as_of, sig, cfg.retrain_every_days)
    with threadpool_limits(cfg.threads):
        if stored is not None:
            artifact = model_store.load_artifact(stored.artifact_path)
            scores, scored = score_with_stored(wh, as_of, cfg.churn, cfg.features, artifact, stored.model_version)
            reason = (f"stored {stored.decision} from {stored.trained_as_of.date()} reused "
                      f"(retrain every {cfg.retrain_every_days} days)")
            result = ChurnResult(scores=scores, decision=stored.decision, reason=reason,
                                 model_version=stored.model_version,
                                 cutoff_train=datetime.fromisoformat(stored.metrics["cutoff_train"]),
                                 cutoff_valid=datetime.fromisoformat(stored.metrics["cutoff_valid"]),
                                 metrics={**stored.metrics, **scored, "fit": "reused"})
            path = Path(stored.artifact_path)
        else:
            result = train_and_score(wh, as_of, cfg.churn, cfg.features, version_of)
            result.metrics["fit"] = "trained"
            path = model_store.save_artifact(models, result.model_version, result.artifact) if result.artifact \
                else None
    with wh.transaction():
        write_churn_scores(wh, result.scores)
        model_store.record_run(wh, model_name="churn", model_version=result.model_version, as_of=as_of,
                               data_cutoff=stored.trained_as_of if stored else as_of, decision=result.decision,
                               params=cfg.churn.model_dump(), metrics=result.metrics, artifact_path=path,
                               fit=result.metrics["fit"], trained_as_of=stored.trained_as_of if stored else as_of,
                               sig=sig)
    summary = StepSummary("customer_churn_scores", len(result.scores), result.decision, result.reason,
                          result.model_version, path, result.metrics)
    return summary, result


def recommendations_step(con: Warehouse | object, as_of: datetime, cfg: IntelligenceConfig) -> StepSummary:
    from crmflow.intelligence.recommendations import append_recommendations, run_recommendations

    wh = as_warehouse(con)
    apply_migrations(wh)
    sig = model_store.signature("recommendations", {"recommendations": cfg.recommendations.model_dump(),
                                                     "features": cfg.features.model_dump()})
    # The similarities are cheap (few products) and recomputed every run; the offline evaluation is
    # the "training" part and follows the retraining cadence.
    stored = model_store.reusable_run(wh, "recommendations", as_of, sig, cfg.retrain_every_days,
                                      needs_artifact=False)
    evaluation = {k: v for k, v in stored.metrics.items() if k not in ("users", "items", "rows", "by_reason")} \
        if stored else None
    version = stored.model_version if stored else model_store.model_version(
        "recommendations", cfg.recommendations.model_dump(), as_of)
    relation = output_relation(wh, RECOMMENDATIONS)
    with wh.transaction():
        # Readers see the old rows until commit; each block of users is appended as it is scored.
        replace_output(wh, RECOMMENDATIONS, RECOMMENDATIONS_SCHEMA.empty_table(), RECOMMENDATIONS_SCHEMA)
        with threadpool_limits(cfg.threads):
            result = run_recommendations(wh, as_of, cfg.recommendations, cfg.features, evaluation=evaluation,
                                         sink=lambda block: append_recommendations(wh, relation, block))
        fit = "trained" if result.metrics.get("evaluated", True) else "reused"
        result.metrics["fit"] = fit
        model_store.record_run(wh, model_name="recommendations", model_version=version, as_of=as_of,
                               data_cutoff=as_of, decision=result.decision, params=cfg.recommendations.model_dump(),
                               metrics=result.metrics, artifact_path=None, fit=fit,
                               trained_as_of=stored.trained_as_of if stored and fit == "reused" else as_of, sig=sig)
    return StepSummary("customer_recommendations", int(result.metrics.get("rows", 0)), result.decision,
                       result.reason, version, metrics=result.metrics)


def priority_step(con: Warehouse | object, as_of: datetime, cfg: IntelligenceConfig) -> StepSummary:
    rows = build_priority(as_warehouse(con), as_of, cfg.priority, cfg.features)
    reason = f"{rows} customers ranked by value at risk" if rows else "no churn scores: nothing to rank"
    return StepSummary("customer_priority", rows, "ranked" if rows else "empty", reason)
