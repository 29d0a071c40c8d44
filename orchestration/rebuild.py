"""The analytics rebuild: the part of the graph that writes no cumulative state (docs/architecture.md
"Lineage and state"), so it may run as of any time, also before the latest as-of already applied.

Selected from the asset graph, not listed: everything except ingestion (landing files are loaded
once, whatever the as-of) and except the assets that accumulate state across runs (journeys, tasks,
banners, delivery events, the dbt histories tagged cumulative_state) and everything downstream of
them (measurement, the report, the dbt models reading tasks). What is left: tag rules, the dbt
models and the intelligence outputs, each rebuilt as of the run's as-of. crmflow/cumulative_state.py refuses a full run that would go back in time.
"""

from __future__ import annotations

import dagster as dg

from crmflow.settings import load_settings
from orchestration.asof import as_of_config
from orchestration.runs import warehouse_tags

CUMULATIVE_GROUPS = ("journeys", "tasks", "banners")
CUMULATIVE_ASSETS = ("delivery_events",)
# dbt models that accumulate across runs carry this dbt tag (the SCD histories)
CUMULATIVE_TAG = "cumulative_state"


def analytics_selection() -> dg.AssetSelection:
    cumulative = (dg.AssetSelection.groups(*CUMULATIVE_GROUPS) | dg.AssetSelection.assets(*CUMULATIVE_ASSETS)
                  | dg.AssetSelection.tag(CUMULATIVE_TAG, ""))
    ingestion = dg.AssetSelection.groups("ingest") - dg.AssetSelection.assets("tag_rules")
    return dg.AssetSelection.all() - ingestion - cumulative.downstream()


# Launched by `crmflow run --as-of T --analytics-only` or from the UI (run config as_of), like crmflow_full.
analytics_rebuild_job = dg.define_asset_job(
    name="crmflow_analytics",
    selection=analytics_selection(),
    description="The analytics alone (tag rules, dbt models, intelligence outputs) as of the run's as-of, "
    "also before the latest as-of applied to cumulative state: writes no journey, task or banner state.",
    config=as_of_config,
    tags=warehouse_tags(load_settings().warehouse),
    executor_def=dg.in_process_executor,
)


def analytics_asset_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """The keys the rebuild materialises, resolved against `defs`' asset graph."""
    graph = defs.resolve_asset_graph()
    return sorted(analytics_selection().resolve(graph), key=lambda key: key.to_user_string())
