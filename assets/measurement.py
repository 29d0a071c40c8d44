"""Measurement assets (group "measurement"): journey_goals (the goals of marketing/journeys/*.yaml,
read by the dbt measurement models), journey_measurement (uplift and A/B statistics over the dbt
models journey_uplift_inputs / journey_ab_inputs), then the HTML report over everything.

Attribution, the funnel and the conversion trend are dbt models (dbt_project/models/marts/measurement);
their sources name journey_dispatch, delivery_events and journey_goals, so Dagster runs them after
dispatch and before journey_measurement (the dbt assets run in several steps around the Python ones)."""

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.relations import MEASUREMENT_MODELS, STATISTICS_TABLES
from orchestration.asof import as_of_from_context
from orchestration.lineage import exposure_deps
from orchestration.resources import CrmflowSettingsResource, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

# pandas, scipy and plotly (the statistics, the report) are imported in the assets' bodies, not
# here: the definitions load without them (issue 20).
GROUP = "measurement"
# What journey_measurement and the report read are their dbt exposures
# (dbt_project/models/marts/measurement/_exposures.yml); the report also reads the statistics tables.
MEASUREMENT_KEYS = [*MEASUREMENT_MODELS, *STATISTICS_TABLES]
DESCRIPTIONS = {
    "journey_uplift": "Treated vs holdout conversion per journey: uplift, 95 % Newcombe interval, p-value, "
                      "incremental revenue; 'not enough data' below the minimum group size.",
    "journey_ab_results": "Per A/B variant: conversion with interval, difference to the reference variant, "
                          "z-test p-value and a verdict.",
}


def _markdown(frame: "pd.DataFrame", columns: list[str]) -> str:
    if frame.empty:
        return "_no data yet_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(v) for v in row) + " |" for row in frame[columns].itertuples(index=False))
    return head + body


def _cell(value: object) -> str:
    import pandas as pd

    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def build_measurement_assets(upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`upstream`: assets the report reads directly besides the measurement tables and marts (e.g.
    delivery_events, operator_tasks); keys that exist in Definitions."""

    @dg.asset(
        name="journey_goals",
        group_name=GROUP,
        kinds={"python"},
        description="Each configured journey's goal and window (marketing/journeys/*.yaml) in journey_goals and "
        "journey_goal_statuses, for the dbt measurement models; a journey without a goal block gets the default.",
    )
    def journey_goals_asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            settings: CrmflowSettingsResource) -> dg.MaterializeResult:
        from crmflow.measurement.goals import journey_goals, write_journey_goals

        config = MeasurementConfig()
        goals = journey_goals(Path(settings.marketing_dir) / "journeys", config)
        with warehouse.open() as wh:
            write_journey_goals(wh, goals)
        context.log.info(f"{len(goals)} journey goals")
        return dg.MaterializeResult(metadata={"journeys": len(goals), "goals": dg.MetadataValue.md(
            _markdown(goals, ["journey_id", "goal_kind", "window_seconds", "goal_label"]))})

    @dg.multi_asset(
        name="journey_measurement",
        group_name=GROUP,
        specs=[dg.AssetSpec(key, deps=exposure_deps("journey_measurement"), description=DESCRIPTIONS[key],
                            kinds={"python"})
               for key in STATISTICS_TABLES],
        check_specs=[dg.AssetCheckSpec("one_row_per_measured_journey", asset="journey_uplift")],
    )
    def journey_measurement(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        from crmflow.measurement.tables import build_statistics

        as_of = as_of_from_context(context)
        with warehouse.open() as wh:
            result = build_statistics(wh, as_of, MeasurementConfig())
            journeys = wh.scalar("select count(distinct journey_id) from journey_uplift_inputs")
        context.log.info(", ".join(f"{k}={v}" for k, v in result.counts.items()))
        uplift_md = _markdown(result.uplift, ["journey_id", "treated_rate", "holdout_rate", "uplift_abs",
                                              "uplift_ci_low", "uplift_ci_high", "p_value", "status"])
        yield dg.MaterializeResult(asset_key="journey_uplift", metadata={
            "as_of": as_of.isoformat(), "journeys_measured": result.counts["journeys_with_uplift"],
            "messages_sent": result.counts["messages_sent"], "orders_attributed": result.counts["orders_attributed"],
            "uplift": dg.MetadataValue.md(uplift_md)})
        yield dg.MaterializeResult(asset_key="journey_ab_results", metadata={
            "as_of": as_of.isoformat(), "variants": result.counts["ab_variants"],
            "results": dg.MetadataValue.md(_markdown(result.ab_results, [
                "journey_id", "step_id", "variant", "sent", "conversion_rate", "p_value", "verdict"]))})
        yield dg.AssetCheckResult(check_name="one_row_per_measured_journey", asset_key="journey_uplift",
                                  passed=len(result.uplift) == journeys,
                                  metadata={"uplift_rows": len(result.uplift), "journeys_in_inputs": journeys})

    @dg.asset(
        name="crmflow_report",
        group_name=GROUP,
        deps=list(dict.fromkeys([*exposure_deps("crmflow_report"), *map(dg.AssetKey, MEASUREMENT_KEYS), *upstream])),
        kinds={"html"},
        description="The self-contained HTML report (<CRMFLOW_EXPORT_DIR>/report.html): customer base, "
        "journeys, uplift, A/B tests, operators, delivery health. Key figures are in this asset's metadata.",
    )
    def crmflow_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       settings: CrmflowSettingsResource) -> dg.MaterializeResult:
        from crmflow.report.build import default_report_path, report_from_warehouse
        from crmflow.report.render import key_figures

        as_of = as_of_from_context(context)
        out = default_report_path(Path(settings.export_dir))
        with warehouse.open() as wh:
            outcome = report_from_warehouse(wh, out, as_of)
        context.log.info(f"report written to {outcome.path} ({outcome.charts} charts, {outcome.seconds:.1f}s)")
        cards = key_figures(outcome.data)
        numbers = {k: v for k, v in outcome.data.figures.items() if v is not None}
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(outcome.path)),
            "charts": outcome.charts,
            "as_of": as_of.isoformat(),
            "key_figures": dg.MetadataValue.md("| figure | value |\n|---|---|\n"
                                               + "\n".join(f"| {label} | {value} |" for label, value, _ in cards)),
            **numbers,
            "sections_without_data": dg.MetadataValue.json(
                sorted(k for k, frame in outcome.data.frames.items() if frame is None)),
        })

    return [journey_goals_asset, journey_measurement, crmflow_report]
