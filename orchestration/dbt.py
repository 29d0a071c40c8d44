"""dbt wiring: the project, the one translator and the dbt assets.

The manifest is prepared at build/test time (`make manifest`, `crmflow` commands, the test
fixtures) with `dbt parse`; importing this module never runs dbt.
"""


import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from crmflow.settings import DBT_PROJECT_DIR
from orchestration.asof import as_of_from_context
from orchestration.dbt_env import dbt_target_env  # noqa: F401  (re-exported: definitions, tests)
from orchestration.dbt_parse_cache import keep_parse, parse_key, step_target_path
from orchestration.progress import dbt_console
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.spark_sync import spark_sync

# Python assets sit between dbt models (e.g. operator_tasks reads marts and feeds
# operator_efficiency), so Dagster runs the dbt graph in several steps. "buildable" runs a test only
# in the step where all of its parents are built or already upstream, so a singular test spanning
# two steps runs once, in the later step, instead of failing in the earlier one.
os.environ.setdefault("DBT_INDIRECT_SELECTION", "buildable")


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class CrmflowDbtTranslator(DagsterDbtTranslator):
    """Raw sources map onto the ingestion assets' keys, sources with meta.dagster.asset_key onto
    that Python asset; models are grouped by layer folder. Several sources may name one asset
    (the ledger and the enrolments are both journey_dispatch's), hence duplicate source keys."""

    def __init__(self, settings: DagsterDbtTranslatorSettings | None = None) -> None:
        super().__init__(settings or DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            # A table written by a Python asset names that asset (meta.dagster.asset_key), e.g. the
            # send ledger -> journey_dispatch (models/marts/measurement/_sources.yml).
            asset_key = (dbt_resource_props.get("meta") or {}).get("dagster", {}).get("asset_key")
            return dg.AssetKey(asset_key) if asset_key else dg.AssetKey([dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        if dbt_resource_props["resource_type"] == "seed":
            return "dbt_seeds"
        if len(fqn) > 2 and fqn[1] in {"staging", "intermediate", "marts"}:
            return fqn[1]
        return "dbt"


@cache
def manifest() -> dict[str, Any]:
    """The parsed manifest (target/manifest.json), read once per process."""
    return json.loads(dbt_project.manifest_path.read_text())


def dbt_vars(as_of_iso: str, business_timezone: str) -> str:
    return json.dumps({"as_of": as_of_iso, "business_timezone": business_timezone})


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=CrmflowDbtTranslator())
def crmflow_dbt_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: CrmflowSettingsResource,
    warehouse: WarehouseResource,
):
    as_of = as_of_from_context(context)
    run_vars = dbt_vars(as_of.isoformat(), settings.timezone)
    args = ["build", "--vars", run_vars]
    # The run's first dbt step parses; the later ones start from its parse (orchestration/dbt_parse_cache.py).
    key = parse_key(run_vars)
    target_path = step_target_path(dbt_project.project_dir, context.op_def.name, key)
    # A Spark warehouse: tables cross between the store and Spark around the step (a no-op otherwise).
    with spark_sync(context, warehouse.path, warehouse.spark, manifest()), dbt_console() as quiet:
        events = dbt.cli(args, context=context, target_path=target_path).stream()
        if os.environ.get("CRMFLOW_DBT_TARGET") == "postgres":
            # dagster/row_count and column types on each model. Not on DuckDB: dbt-duckdb's connection
            # stays open in this process with another configuration, and the next step cannot open the file.
            events = events.fetch_row_counts().fetch_column_metadata(with_column_lineage=False)
        try:
            yield from events
            keep_parse(dbt_project.project_dir, target_path, key)
        finally:
            if quiet is not None and quiet.done:
                context.log.info(quiet.done)  # the CLI's step line: "dbt PASS=25 WARN=0 ERROR=0 ..."
