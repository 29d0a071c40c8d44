"""Ingestion assets: landing files (and files pulled from HTTP APIs) into raw_* tables."""


import dagster as dg

from connectors.sources.files import IngestStats, ingest_source
from orchestration.asof import as_of_from_context
from orchestration.resources import CrmflowSettingsResource, WarehouseResource

INGEST_SOURCES = ("events", "registrations", "orders")


def ingest_results(context: dg.AssetExecutionContext, label: str, check_name: str, stats: IngestStats):
    """Log line, materialisation metadata and the rows-reconcile check of one ingestion run; shared by
    every asset that loads landing files through IngestStats (raw_* sources, manual tags)."""
    context.log.info(
        f"{label}: {stats.files_ingested} new file(s), {stats.rows_read} rows read, "
        f"{stats.rows_loaded} loaded, {stats.duplicates_skipped} duplicates, "
        f"{stats.rows_quarantined} quarantined"
    )
    yield dg.MaterializeResult(metadata=_stats_metadata(stats))
    # every row read is loaded, a duplicate or quarantined: nothing is lost silently
    yield dg.AssetCheckResult(
        check_name=check_name,
        passed=stats.balanced,
        metadata={"rows_read": stats.rows_read, "accounted": stats.rows_loaded
                  + stats.duplicates_skipped + stats.rows_quarantined},
    )


def _stats_metadata(stats: IngestStats) -> dict[str, dg.MetadataValue]:
    reasons = "\n".join(f"| {r} | {n} |" for r, n in sorted(stats.quarantine_reasons.items()))
    return {
        "files_ingested": dg.MetadataValue.int(stats.files_ingested),
        "files_skipped": dg.MetadataValue.int(stats.files_skipped),
        "rows_read": dg.MetadataValue.int(stats.rows_read),
        "rows_loaded": dg.MetadataValue.int(stats.rows_loaded),
        "duplicates_skipped": dg.MetadataValue.int(stats.duplicates_skipped),
        "rows_quarantined": dg.MetadataValue.int(stats.rows_quarantined),
        "quarantine_reasons": dg.MetadataValue.md("| reason | rows |\n|---|---|\n" + reasons),
    }


def build_ingest_asset(source: str) -> dg.AssetsDefinition:
    check_name = f"raw_{source}_rows_reconcile"

    @dg.asset(
        name=f"raw_{source}",
        group_name="ingest",
        description=f"Landing files under <landing>/{source}/ loaded into raw_{source}; bad rows go "
        f"to quarantine_{source}. Incremental (files with an unchanged size and mtime are skipped unread, "
        "others by path + content hash) and deduplicated.",
        check_specs=[dg.AssetCheckSpec(
            check_name, asset=f"raw_{source}",
            description="rows_read = rows_loaded + duplicates_skipped + rows_quarantined for this run")],
        deps=["api_pull"] if source != "events" else [],
    )
    def _ingest(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        settings: CrmflowSettingsResource,
    ):
        as_of = as_of_from_context(context)
        with warehouse.open() as wh:
            stats = ingest_source(wh, source, settings.landing_dir, loaded_at=as_of,
                                  accepted=settings.accepted_times)
        yield from ingest_results(context, source, check_name, stats)

    return _ingest


ingest_assets = [build_ingest_asset(source) for source in INGEST_SOURCES]
