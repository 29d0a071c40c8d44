"""Delivery events asset: webhook envelopes in <landing>/delivery_events into delivery_events, and
bounces / spam reports / unsubscribes / SMS STOPs into suppression_list."""

import dagster as dg

from crmflow.delivery_events import load_delivery_events
from orchestration.asof import as_of_from_context
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_channels import DeliveryVerificationResource


@dg.asset(
    name="delivery_events",
    group_name="channels",
    description="SendGrid Event Webhook and Twilio callback envelopes (signatures verified again) loaded "
    "into delivery_events, de-duplicated by event id and joined to send_ledger when it exists; "
    "suppressing events feed suppression_list; events carrying a message key settle unknown ledger rows.",
    check_specs=[dg.AssetCheckSpec("delivery_envelopes_verified", asset="delivery_events")],
)
def delivery_events(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    settings: CrmflowSettingsResource,
    delivery_verification: DeliveryVerificationResource,
):
    as_of = as_of_from_context(context)
    with warehouse.open() as wh:
        stats = load_delivery_events(wh, settings.landing_dir, delivery_verification.delivery_keys(), as_of)
    for rejection in stats.rejections[:20]:
        context.log.warning(f"rejected: {rejection}")
    if stats.files_waiting:
        context.log.warning(f"{stats.files_waiting} file(s) wait for a verification key "
                            "(SENDGRID_WEBHOOK_PUBLIC_KEY / TWILIO_AUTH_TOKEN)")
    yield dg.MaterializeResult(metadata={
        "files_loaded": stats.files_loaded, "files_skipped": stats.files_skipped,
        "files_waiting": stats.files_waiting, "envelopes": stats.envelopes,
        "envelopes_rejected": stats.envelopes_rejected, "events_inserted": stats.events_inserted,
        "duplicates_skipped": stats.duplicates_skipped, "suppressions_added": stats.suppressions_added,
        "ledger_settled": stats.ledger_settled,
    })
    yield dg.AssetCheckResult(
        check_name="delivery_envelopes_verified",
        passed=not stats.rejections,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected": len(stats.rejections),
                  "first": stats.rejections[0] if stats.rejections else ""},
    )
