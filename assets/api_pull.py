"""Pull registrations/orders from the configured HTTP API into landing files (placeholder)."""


import dagster as dg


@dg.asset(group_name="ingest", description="Pulls registrations and orders from the HTTP API source.")
def api_pull(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"configured": False})
