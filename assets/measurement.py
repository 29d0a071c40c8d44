"""Measurement assets (group "measurement"): attribution/trend/uplift/A-B tables after the journeys
have dispatched and the delivery events are in, then the HTML report over everything."""

from pathlib import Path

import dagster as dg
import pandas as pd

from crmflow.measurement.tables import build_measurement
from crmflow.report.build import default_report_path, report_from_warehouse
from crmflow.report.render import key_figures
from orchestration.asof import as_of_from_context
from orchestration.resources import CrmflowSettingsResource, WarehouseResource

GROUP = "measurement"
MEASUREMENT_INPUTS = ["stg_shop__orders", "events_stitched"]
MEASUREMENT_KEYS = ["journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                    "journey_uplift", "journey_ab_results"]
# The marts the report draws; dbt assets, so they exist in every Definitions.
REPORT_MARTS = ["customer_profile", "customer_lifecycle", "customer_lifecycle_history", "customer_value_tier",
                "customer_segments", "kpi_daily", "kpi_ltv", "kpi_cohort_retention", "kpi_funnel",
                "operator_efficiency"]
DESCRIPTIONS = {
    "journey_order_attribution": "Each paid order credited to at most one journey message (last touch within "
                                 "the journey's goal window).",
    "journey_attribution": "Per journey, step and variant: sent, delivered, opened, clicked, converted, revenue.",
    "journey_conversion_trend": "Cumulative conversion share by send date and day 0..7 after the send.",
    "journey_uplift": "Treated vs holdout conversion per journey: uplift, 95 % Newcombe interval, p-value, "
                      "incremental revenue; 'not enough data' below the minimum group size.",
    "journey_ab_results": "Per A/B variant: conversion with interval, difference to the reference variant, "
                          "z-test p-value and a verdict.",
}


def _markdown(frame: pd.DataFrame, columns: list[str]) -> str:
    if frame.empty:
        return "_no data yet_"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(v) for v in row) + " |" for row in frame[columns].itertuples(index=False))
    return head + body


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def build_measurement_assets(upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """`upstream`: the journey/dispatch and delivery assets the tables read (keys that exist in Definitions)."""
    inputs = [dg.AssetKey(k) for k in MEASUREMENT_INPUTS] + upstream

    @dg.multi_asset(
        name="journey_measurement",
        group_name=GROUP,
        specs=[dg.AssetSpec(key, deps=inputs, description=DESCRIPTIONS[key], kinds={"duckdb"})
               for key in MEASUREMENT_KEYS],
        check_specs=[dg.AssetCheckSpec("order_credited_at_most_once", asset="journey_order_attribution"),
                     dg.AssetCheckSpec("funnel_counts_not_above_sent", asset="journey_attribution")],
    )
    def journey_measurement(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            settings: CrmflowSettingsResource):
        as_of = as_of_from_context(context)
        with warehouse.open() as wh:
            result = build_measurement(wh, Path(settings.marketing_dir) / "journeys", as_of)
            duplicates = wh.scalar("select count(*) - count(distinct order_id) from journey_order_attribution")
            over = wh.scalar("""select count(*) from journey_attribution where delivered > sent or opened > sent
                                or clicked > sent or converted > sent""")
        if result.missing_inputs:
            context.log.info(f"measured with empty stand-ins for {', '.join(sorted(result.missing_inputs))}")
        context.log.info(", ".join(f"{k}={v}" for k, v in result.counts.items()))
        uplift_md = _markdown(result.uplift, ["journey_id", "treated_rate", "holdout_rate", "uplift_abs",
                                              "uplift_ci_low", "uplift_ci_high", "p_value", "status"])
        for key in MEASUREMENT_KEYS:
            metadata: dict[str, object] = {"as_of": as_of.isoformat()}
            if key == "journey_attribution":
                metadata.update(messages_sent=result.counts["messages_sent"], rows=result.counts["attribution_rows"])
            elif key == "journey_order_attribution":
                metadata.update(orders_attributed=result.counts["orders_attributed"])
            elif key == "journey_uplift":
                metadata.update(journeys_measured=result.counts["journeys_with_uplift"],
                                uplift=dg.MetadataValue.md(uplift_md))
            elif key == "journey_ab_results":
                metadata.update(variants=result.counts["ab_variants"], results=dg.MetadataValue.md(_markdown(
                    result.ab_results, ["journey_id", "step_id", "variant", "sent", "conversion_rate", "p_value",
                                        "verdict"])))
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        yield dg.AssetCheckResult(check_name="order_credited_at_most_once", asset_key="journey_order_attribution",
                                  passed=duplicates == 0, metadata={"duplicates": duplicates})
        yield dg.AssetCheckResult(check_name="funnel_counts_not_above_sent", asset_key="journey_attribution",
                                  passed=over == 0, metadata={"rows_over": over})

    @dg.asset(
        name="crmflow_report",
        group_name=GROUP,
        deps=[dg.AssetKey(k) for k in MEASUREMENT_KEYS + REPORT_MARTS] + upstream,
        kinds={"html"},
        description="The self-contained HTML report (<CRMFLOW_EXPORT_DIR>/report.html): customer base, "
        "journeys, uplift, A/B tests, operators, delivery health. Key figures are in this asset's metadata.",
    )
    def crmflow_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       settings: CrmflowSettingsResource) -> dg.MaterializeResult:
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

    return [journey_measurement, crmflow_report]
