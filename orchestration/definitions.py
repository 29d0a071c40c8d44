"""The one Definitions object for crmflow (`dagster dev`, `dagster definitions validate`, the CLI)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from assets.api_pull import api_pull
from assets.banners import build_banner_assets
from assets.delivery_events import delivery_events
from assets.ingest import ingest_assets
from assets.intelligence import intelligence_assets
from assets.journeys import build_journey_assets
from assets.manual_tags import raw_manual_tags, tag_rules
from assets.measurement import build_measurement_assets
from assets.tasks import build_task_assets, task_outcomes
from crmflow.settings import load_settings
from orchestration.conventions import apply_conventions, journey_owners
from orchestration.dbt import crmflow_dbt_assets, dbt_project, dbt_target_env
from orchestration.progress import console_logger, step_progress_logger
from orchestration.rebuild import analytics_rebuild_job
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_banners_tasks import banner_push_from_env, tasks_push_from_env
from orchestration.resources_channels import delivery_verification_from_env
from orchestration.resources_journeys import JourneyChannelsResource
from orchestration.resources_sources import api_source_from_env
from orchestration.schedules import daily_schedule, full_pipeline_job, landing_files_sensor
from orchestration.schedules_journeys import journey_tick_job, journey_tick_schedule

# dbt from the same environment as this interpreter, whether or not the venv is activated.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

settings = load_settings()
# dbt's profile reads the warehouse from the environment: the same absolute DuckDB path, the
# postgres output's CRMFLOW_PG_* variables and PGPASSWORD (never a command-line argument), or Spark's.
os.environ.update(dbt_target_env(settings.dbt_target))

defs = dg.Definitions(
    # descriptions safe for Markdown, kinds, journey owners (orchestration/conventions.py)
    assets=apply_conventions([api_pull, *ingest_assets, raw_manual_tags, tag_rules, crmflow_dbt_assets, *intelligence_assets, *build_journey_assets(settings.journeys_dir), delivery_events,
            # banners and tasks read journey_banner_overrides / journey_task_requests: after journeys
            *build_banner_assets([dg.AssetKey("journey_dispatch")]), task_outcomes,
            *build_task_assets([dg.AssetKey("journey_dispatch")]),
            # measurement reads the ledger, delivery events and operator tasks: last, then the report
            *build_measurement_assets([dg.AssetKey(k) for k in ("journey_dispatch", "delivery_events",
                                                                 "operator_tasks")])],
                            journey_owners(settings.journeys_dir)),
    jobs=[full_pipeline_job, journey_tick_job, analytics_rebuild_job],
    schedules=[daily_schedule, journey_tick_schedule],
    sensors=[landing_files_sensor],
    resources={
        "warehouse": WarehouseResource.from_target(settings.warehouse, settings.spark),
        "settings": CrmflowSettingsResource.from_settings(settings),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        "delivery_verification": delivery_verification_from_env(),
        "api_source": api_source_from_env(),
        "banner_push": banner_push_from_env(),
        "tasks_push": tasks_push_from_env(),
        "journey_channels": JourneyChannelsResource(
            outbox_dir=str(settings.outbox_dir), channels_file=str(settings.marketing_dir / "channels.yaml")),
    },
    loggers={"console": console_logger, "progress": step_progress_logger},
    # One process: DuckDB allows a single writer, so steps run one after another.
    executor=dg.in_process_executor,
)
