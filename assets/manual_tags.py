"""Tag inputs for dbt's customer_tags: operator CSVs (raw_manual_tags) and marketing/tags.yaml (tag_rules).

Both asset keys equal the dbt source table names, so the dbt translator makes them upstream of
customer_tags automatically.
"""


from pathlib import Path

import dagster as dg

from assets.ingest import ingest_results
from connectors.sources.manual_tags import ingest_manual_tags
from crmflow.tags import compile_rules, load_tags_config, write_tag_rules
from crmflow.warehouse import apply_migrations
from orchestration.asof import as_of_from_context
from orchestration.resources import CrmflowSettingsResource, WarehouseResource


@dg.asset(
    group_name="ingest",
    description="<landing>/manual_tags/*.csv (user_id, tag, added_by, added_at) loaded into raw_manual_tags; "
    "bad rows to quarantine_manual_tags with a reason. Incremental by file content hash.",
    check_specs=[dg.AssetCheckSpec("raw_manual_tags_rows_reconcile", asset="raw_manual_tags")],
)
def raw_manual_tags(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    settings: CrmflowSettingsResource):
    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        stats = ingest_manual_tags(wh, settings.landing_dir, loaded_at=as_of)
    yield from ingest_results(context, "manual tags", "raw_manual_tags_rows_reconcile", stats)


@dg.asset(
    group_name="ingest",
    description="marketing/tags.yaml validated (crmflow/tags.py) and compiled into table tag_rules, "
    "one row per tag condition; dbt evaluates them in int_tag_matches.",
)
def tag_rules(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              settings: CrmflowSettingsResource) -> dg.MaterializeResult:
    as_of = as_of_from_context(context)
    config = load_tags_config(Path(settings.marketing_dir) / "tags.yaml")  # raises naming file/tag/field
    rules = compile_rules(config)
    with warehouse.open() as wh:
        apply_migrations(wh)
        count = write_tag_rules(wh, rules, loaded_at=as_of)
    return dg.MaterializeResult(metadata={"tags": len(config.tags), "conditions": count})
