"""One function per intelligence output: compute, write the table, store the model run.

The Dagster assets call these and only translate the returned summaries into metadata and checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from threadpoolctl import threadpool_limits

from crmflow.intelligence import model_store
from crmflow.intelligence.config import IntelligenceConfig
from crmflow.intelligence.priority import build_priority

if TYPE_CHECKING:
    from crmflow.intelligence.churn import ChurnResult

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


def clustering_step(con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: IntelligenceConfig) -> StepSummary:
    from crmflow.intelligence.clustering import run_clustering, write_clusters

    with threadpool_limits(cfg.threads):
        result = run_clustering(con, as_of, cfg.clustering, cfg.features)
    version = model_store.model_version("clustering", cfg.clustering.model_dump(), as_of)
    con.execute("begin transaction")
    write_clusters(con, result, as_of)
    model_store.record_run(con, model_name="clustering", model_version=version, as_of=as_of, data_cutoff=as_of,
                           decision=result.decision, params=cfg.clustering.model_dump(), metrics=result.metrics,
                           artifact_path=None)
    con.execute("commit")
    return StepSummary("customer_clusters", len(result.assignments), result.decision, result.reason, version,
                       metrics=result.metrics)


def churn_step(
    con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: IntelligenceConfig, models: Path
) -> tuple[StepSummary, ChurnResult]:
    def version_of(decision: str, params: dict[str, Any]) -> str:
        name = "churn" if decision == "model" else f"churn_{decision}"
        return model_store.model_version(name, params, as_of)

    from crmflow.intelligence.churn import train_and_score, write_churn_scores

    with threadpool_limits(cfg.threads):
        result = train_and_score(con, as_of, cfg.churn, cfg.features, version_of)
    path = model_store.save_artifact(models, result.model_version, result.artifact) if result.artifact else None
    con.execute("begin transaction")
    write_churn_scores(con, result.scores)
    model_store.record_run(con, model_name="churn", model_version=result.model_version, as_of=as_of,
                           data_cutoff=as_of, decision=result.decision, params=cfg.churn.model_dump(),
                           metrics=result.metrics, artifact_path=path)
    con.execute("commit")
    summary = StepSummary("customer_churn_scores", len(result.scores), result.decision, result.reason,
                          result.model_version, path, result.metrics)
    return summary, result


def recommendations_step(con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: IntelligenceConfig) -> StepSummary:
    from crmflow.intelligence.recommendations import REC_SELECT, append_recommendations, run_recommendations

    version = model_store.model_version("recommendations", cfg.recommendations.model_dump(), as_of)
    con.execute("begin transaction")
    # Readers see the old table until commit; each block of users is inserted as it is scored.
    con.execute("create or replace table customer_recommendations as select "
                f"{REC_SELECT} from (select null as user_id, null as rank, null as sku, null as score, "
                "null as reason) where false")
    with threadpool_limits(cfg.threads):
        result = run_recommendations(con, as_of, cfg.recommendations, cfg.features,
                                     sink=lambda block: append_recommendations(con, "customer_recommendations",
                                                                               block))
    model_store.record_run(con, model_name="recommendations", model_version=version, as_of=as_of,
                           data_cutoff=as_of, decision=result.decision, params=cfg.recommendations.model_dump(),
                           metrics=result.metrics, artifact_path=None)
    con.execute("commit")
    return StepSummary("customer_recommendations", int(result.metrics.get("rows", 0)), result.decision,
                       result.reason, version, metrics=result.metrics)


def priority_step(con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: IntelligenceConfig) -> StepSummary:
    rows = build_priority(con, as_of, cfg.priority, cfg.features)
    reason = f"{rows} customers ranked by value at risk" if rows else "no churn scores: nothing to rank"
    return StepSummary("customer_priority", rows, "ranked" if rows else "empty", reason)
