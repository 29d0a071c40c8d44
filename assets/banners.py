"""Banner assignment asset (group "banners"): thin wrapper over crmflow.banners."""

from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from connectors.exports.http_push import push_table
from crmflow.banners.config import load_banner_config
from crmflow.banners.pipeline import run_banner_assignment
from crmflow.banners.publish import mark_pushed, unpushed_records
from orchestration.asof import as_of_from_context
from orchestration.lineage import exposure_deps
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_banners_tasks import ExportPushResource

# Inputs from the dbt marts and intelligence: the dbt exposure banner_assignments
# (dbt_project/models/_python_assets__exposures.yml); journeys write journey_banner_overrides (extra_deps).


def build_banner_assets(extra_deps: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    @dg.asset(
        name="banner_assignments",
        group_name="banners",
        deps=exposure_deps("banner_assignments") + extra_deps,
        kinds={"duckdb"},
        description="One creative per user and slot from marketing/banners.yaml (journey overrides first, "
        "then priority, weighted tie-break, slot default). Changes go to banner_assignment_changes; the app "
        "export (<exports>/banners/*.parquet|jsonl) is rewritten only on change; optional HTTP push of the "
        "changes not delivered yet (a failed push is retried next run).",
        check_specs=[dg.AssetCheckSpec("one_creative_per_user_and_slot", asset="banner_assignments")],
    )
    def banner_assignments(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                           settings: CrmflowSettingsResource, banner_push: ExportPushResource):
        as_of = as_of_from_context(context)
        config = load_banner_config(Path(settings.marketing_dir) / "banners.yaml")
        with warehouse.open() as wh:
            result = run_banner_assignment(wh, config, as_of, ZoneInfo(settings.timezone), Path(settings.export_dir),
                                           with_changed=False)
            duplicates = wh.scalar("select count(*) from (select user_id, slot from banner_assignments "
                                   "group by user_id, slot having count(*) > 1) as pairs")
            pushed = "not configured"
            if banner_push.configured:
                # this run's changes plus any an earlier run failed to deliver
                push, delivered = push_table(banner_push.push_config(), "banner_assignments",
                                             unpushed_records(wh))
                mark_pushed(wh, delivered, as_of)
                pushed = push.summary()
                if not push.ok:
                    context.log.warning(f"banner push kept for the next run: {push.errors[:5]}")
        if result.stats.missing_inputs:
            context.log.info(f"banners: missing inputs treated as empty: {result.stats.missing_inputs}")
        yield dg.MaterializeResult(metadata={
            "as_of": as_of.isoformat(),
            "users": result.stats.users,
            "rows": result.stats.rows,
            "by_reason": dg.MetadataValue.json(result.stats.by_reason),
            "changes": dg.MetadataValue.json(result.changes),
            "export_written": result.export_written,
            "overrides_ignored_unknown_creative": result.stats.overrides_ignored,
            "missing_inputs": dg.MetadataValue.json(result.stats.missing_inputs),
            "push": pushed,
        })
        yield dg.AssetCheckResult(check_name="one_creative_per_user_and_slot", passed=duplicates == 0,
                                  metadata={"duplicate_pairs": duplicates})

    return [banner_assignments]
