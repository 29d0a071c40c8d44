"""The delivery_events asset materialised with Dagster on a temp warehouse and landing folder."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from helpers_channels import new_p256_key, sendgrid_envelope

from assets.delivery_events import delivery_events
from connectors.delivery.envelope import EnvelopeWriter
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_channels import DeliveryVerificationResource


def test_asset_loads_events_and_reports_rejections(tmp_path):
    private, public_b64 = new_p256_key()
    landing = tmp_path / "landing"
    writer = EnvelopeWriter(landing)
    good = sendgrid_envelope(private, [{"event": "bounce", "email": "a@example.com", "sg_event_id": "e1",
                                        "timestamp": 1795000000, "message_key": "k1"}])
    bad = type(good)("sendgrid", good.received_at, good.url, good.headers, good.body.replace("e1", "e2"))
    writer.write(good, datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC))
    writer.write(bad, datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC))
    warehouse = tmp_path / "w.duckdb"
    result = dg.materialize(
        [delivery_events],
        resources={
            "warehouse": WarehouseResource(path=str(warehouse)),
            "settings": CrmflowSettingsResource(landing_dir=str(landing), outbox_dir=str(tmp_path / "o"),
                                                export_dir=str(tmp_path / "e"), marketing_dir=str(tmp_path)),
            "delivery_verification": DeliveryVerificationResource(sendgrid_public_key=public_b64),
        },
        tags=as_of_tags(datetime(2026, 11, 22, 12, 0, tzinfo=UTC)),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("delivery_events")[0].metadata
    assert metadata["events_inserted"].value == 1 and metadata["envelopes_rejected"].value == 1
    check = result.get_asset_check_evaluations()[0]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    with connect(warehouse, read_only=True) as con:
        assert con.execute("select channel, address, reason from suppression_list").fetchall() == [
            ("email", "a@example.com", "bounce")]
        assert con.execute("select _loaded_at from delivery_events").fetchall()[0][0] == datetime(
            2026, 11, 22, 12, 0, tzinfo=UTC)
