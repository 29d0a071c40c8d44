"""Dagster: one asset per journey file plus journey_dispatch; a broken file fails only its asset."""

import shutil
from pathlib import Path

import dagster as dg
from helpers_journeys import make_customer_tables, profile, ts
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 (fixtures)

from assets.journeys import build_journey_assets
from crmflow.settings import REPO_ROOT
from crmflow.warehouse import Warehouse, connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_journeys import JourneyChannelsResource


def test_journey_assets_tick_and_dispatch_with_a_broken_file(tmp_path: Path) -> None:
    marketing = tmp_path / "marketing"
    (marketing / "journeys").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "marketing" / "journeys" / "welcome_series.yaml", marketing / "journeys")
    shutil.copy(REPO_ROOT / "tests" / "fixtures" / "journeys_broken" / "b05_unknown_template.yaml",
                marketing / "journeys")
    warehouse = tmp_path / "wh.duckdb"
    with connect(warehouse) as con:
        make_customer_tables(con, customer_profile=[profile("u1")], customer_segment_history=[
            {"user_id": "u1", "segment_family": "lifecycle", "segment": "prospect",
             "valid_from": ts("2026-03-01T10:00"), "valid_to": None}])
    assets = build_journey_assets(marketing / "journeys", mart_deps=[])
    assert {a.key.path[-1] for a in assets} == {"journey_welcome_series", "journey_b05_unknown_template",
                                                "journey_dispatch"}
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=str(tmp_path / "outbox"),
                                            export_dir=str(tmp_path), marketing_dir=str(marketing)),
        "journey_channels": JourneyChannelsResource(outbox_dir=str(tmp_path / "outbox"), outbox_only=True),
    }
    result = dg.materialize(assets, resources=resources, tags=as_of_tags(ts("2026-03-01T12:00")))
    assert result.success  # the broken journey reports, it does not stop the tick
    checks = {e.asset_check_evaluation_data.check_name + ":" + e.asset_check_evaluation_data.asset_key.path[-1]:
              e.asset_check_evaluation_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    broken = checks["journey_config_valid:journey_b05_unknown_template"]
    assert not broken.passed and "unknown template 'helo'" in str(broken.metadata["errors"].value)
    assert checks["journey_config_valid:journey_welcome_series"].passed
    assert checks["send_ledger_keys_unique:journey_dispatch"].passed
    with connect(warehouse) as con:
        assert con.execute("select user_id, state from send_ledger").fetchall() == [("u1", "sent")]
    assert (tmp_path / "outbox" / "email.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_journey_tick_asset_on_postgres(tmp_path: Path, postgres_url: str,  # noqa: F811
                                        postgres_warehouse: Warehouse) -> None:  # noqa: F811
    """The tick asset opens the warehouse through the interface: a postgresql:// target works as is."""
    marketing = tmp_path / "marketing"
    (marketing / "journeys").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "marketing" / "journeys" / "welcome_series.yaml", marketing / "journeys")
    make_customer_tables(postgres_warehouse, customer_profile=[profile("u1"), profile("u2")],
                         customer_segment_history=[
                             {"user_id": u, "segment_family": "lifecycle", "segment": "prospect",
                              "valid_from": ts("2026-03-01T10:00"), "valid_to": None} for u in ("u1", "u2")])
    tick = [a for a in build_journey_assets(marketing / "journeys", mart_deps=[])
            if a.key.path[-1] == "journey_welcome_series"]
    resources = {
        "warehouse": WarehouseResource(path=postgres_url),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=str(tmp_path / "outbox"),
                                            export_dir=str(tmp_path), marketing_dir=str(marketing)),
    }
    result = dg.materialize(tick, resources=resources, tags=as_of_tags(ts("2026-03-01T12:00")))
    assert result.success
    rows = postgres_warehouse.fetch_rows("select user_id, state from crm_ops.send_ledger order by user_id")
    assert rows == [("u1", "planned"), ("u2", "planned")]
