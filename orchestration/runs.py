"""Runs the CLI starts go through the Dagster instance at DAGSTER_HOME, like schedule ticks and UI
launches: they appear in the run history with their as-of, and their materialisations in the asset
catalog.

DuckDB has one writer: the instance's run queue starts one run at a time (orchestration/dagster.yaml),
and a CLI run (executed in this process, not queued) first checks that no other run on the same
warehouse is queued or in progress, and says so in one line if one is. A Spark warehouse is the same:
its embedded Derby metastore admits one JVM at a time, so a run on the same Spark folder (tag
crmflow/spark) is in the way too, whatever the store; steps run in one process (definitions.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from crmflow.errors import CrmflowUserError
from crmflow.warehouse import WarehouseTarget
from orchestration.asof import AS_OF_TAG, as_of_run_config, as_of_tags

WAREHOUSE_TAG = "crmflow/warehouse"
SPARK_TAG = "crmflow/spark"
DAGSTER_HOME_DEFAULT = "./var/dagster_home"
INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def full_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("crmflow_full")


def journey_tick_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("journey_tick")


def analytics_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs.resolve_job_def("crmflow_analytics")


JOBS = {"crmflow_full": full_job, "journey_tick": journey_tick_job, "crmflow_analytics": analytics_job}


def warehouse_tags(target: WarehouseTarget, spark: WarehouseTarget | None = None) -> dict[str, str]:
    """The run's store (its warehouse), and the Spark folder when dbt builds on Spark."""
    return {WAREHOUSE_TAG: target.redacted(), **({SPARK_TAG: str(spark.path)} if spark is not None else {})}


def dagster_instance() -> dg.DagsterInstance:
    """The instance at DAGSTER_HOME; unset, ./var/dagster_home (created with crmflow's dagster.yaml)."""
    if not os.environ.get("DAGSTER_HOME"):
        home = Path(DAGSTER_HOME_DEFAULT).resolve()
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    if not home.is_absolute():
        raise CrmflowUserError(f"DAGSTER_HOME={str(home)!r} must be an absolute path")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(INSTANCE_CONFIG.read_text())
    return dg.DagsterInstance.get()


def runs_in_the_way(instance: dg.DagsterInstance, target: WarehouseTarget,
                    spark: WarehouseTarget | None = None) -> list[dg.DagsterRun]:
    """Runs on the same DuckDB file, or the same Spark folder, that are queued or in progress (none on
    a server warehouse)."""
    statuses = list(IN_PROGRESS_RUN_STATUSES)
    found = []
    if spark is not None:
        found += instance.get_runs(filters=dg.RunsFilter(statuses=statuses, tags={SPARK_TAG: str(spark.path)}))
    if target.kind == "duckdb":
        found += instance.get_runs(filters=dg.RunsFilter(statuses=statuses, tags={WAREHOUSE_TAG: target.redacted()}))
    return list({run.run_id: run for run in found}.values())


def check_no_run_in_the_way(instance: dg.DagsterInstance, target: WarehouseTarget,
                            spark: WarehouseTarget | None = None) -> None:
    busy = runs_in_the_way(instance, target, spark)
    if busy:
        run = busy[0]
        where, why = ((spark.redacted() + f" ({spark.path})", "Spark's metastore admits one session")
                      if spark is not None and run.tags.get(SPARK_TAG) == str(spark.path)
                      else (target.redacted(), "DuckDB has one writer"))
        raise CrmflowUserError(
            f"run {run.run_id[:8]} ({run.job_name}, as of {run.tags.get(AS_OF_TAG, '?')}) is "
            f"{run.status.value.lower()} on {where} in the Dagster instance at "
            f"{os.environ['DAGSTER_HOME']}: {why}, wait for it to finish (or cancel it in the UI)")


def execute(job_name: str, as_of: datetime, target: WarehouseTarget, *, run_config: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | None = None, instance: dg.DagsterInstance | None = None,
            spark: WarehouseTarget | None = None) -> dg.ExecuteJobResult:
    """Run `job_name` as of `as_of` in this process, recorded in the instance (run config as_of + tag)."""
    instance = instance or dagster_instance()
    check_no_run_in_the_way(instance, target, spark)
    return dg.execute_job(
        dg.reconstructable(JOBS[job_name]), instance=instance,
        run_config={**(run_config or {}), **as_of_run_config(as_of)},
        tags={**(tags or {}), **as_of_tags(as_of), **warehouse_tags(target, spark)},
        raise_on_error=False,
    )
