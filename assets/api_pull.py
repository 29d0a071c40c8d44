"""Pull registrations/orders from the configured HTTP API into landing files (ingested by raw_*)."""

from pathlib import Path

import dagster as dg

from connectors.sources.api_sync import sync_api_resources
from orchestration.asof import as_of_from_context
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_sources import BASE_URL_ENV, HttpApiSourceResource


@dg.asset(
    group_name="ingest",
    description="Pulls registrations and orders from the HTTP API source (CRMFLOW_API_BASE_URL) into "
    "<landing>/<resource>/api-*.jsonl; the cursor (max updated_at) is kept in source_cursors.",
)
def api_pull(
    context: dg.AssetExecutionContext,
    api_source: HttpApiSourceResource,
    warehouse: WarehouseResource,
    settings: CrmflowSettingsResource,
) -> dg.MaterializeResult:
    if not api_source.configured:
        context.log.info(f"HTTP API source not configured ({BASE_URL_ENV} unset): nothing pulled")
        return dg.MaterializeResult(metadata={"configured": False})
    results = sync_api_resources(
        api_source.client(), warehouse.open, Path(settings.landing_dir), as_of_from_context(context),
        api_source.resources,
    )
    metadata: dict[str, dg.RawMetadataValue] = {"configured": True}
    for r in results:
        name = r.pull.resource
        metadata.update({
            f"{name}_pages": r.pull.pages,
            f"{name}_rows": r.pull.rows,
            f"{name}_files": len(r.pull.files),
            f"{name}_retries": r.pull.retries,
            f"{name}_cursor": r.cursor_after or "",
        })
        context.log.info(f"{name}: {r.pull.rows} rows in {r.pull.pages} page(s), cursor "
                         f"{r.cursor_before} -> {r.cursor_after}")
    return dg.MaterializeResult(metadata=metadata)
