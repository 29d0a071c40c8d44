"""Dagster materialisation of the ingest assets on a temp DuckDB: metadata and the reconcile check."""

import dagster as dg
from helpers_ingest import AS_OF, ORDER_HEADER, event, order, registration, write_csv, write_jsonl

from assets.ingest import ingest_assets
from crmflow.warehouse import connect
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource


def _run(tmp_path):
    settings = CrmflowSettingsResource(landing_dir=str(tmp_path / "landing"), outbox_dir=str(tmp_path / "o"),
                                       export_dir=str(tmp_path / "x"), marketing_dir=str(tmp_path / "m"))
    return dg.materialize(
        ingest_assets,
        resources={"settings": settings, "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))},
        tags=as_of_tags(AS_OF),
        selection=dg.AssetSelection.assets("raw_events", "raw_registrations", "raw_orders"),
    )


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    mats = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_ingest_assets_report_rows_and_pass_the_reconcile_check(tmp_path):
    landing = tmp_path / "landing"
    write_jsonl(landing / "events" / "e.jsonl", [event("m1"), event("m1"), event("m2", type="bogus"), ""])
    write_jsonl(landing / "registrations" / "r.jsonl", [registration("u1"), registration("u2", phone="12")])
    write_csv(landing / "orders" / "o.csv", ORDER_HEADER, [order("o1"), order("o2", status="lost")])

    result = _run(tmp_path)
    assert result.success
    events = _metadata(result, "raw_events")
    assert {k: events[k] for k in ("files_ingested", "rows_read", "rows_loaded", "duplicates_skipped",
                                    "rows_quarantined")} == {
        "files_ingested": 1, "rows_read": 3, "rows_loaded": 1, "duplicates_skipped": 1, "rows_quarantined": 1}
    assert "| invalid_type | 1 |" in events["quarantine_reasons"]
    assert _metadata(result, "raw_registrations")["rows_quarantined"] == 1
    assert "| unknown_status | 1 |" in _metadata(result, "raw_orders")["quarantine_reasons"]

    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"raw_events_rows_reconcile", "raw_registrations_rows_reconcile",
                           "raw_orders_rows_reconcile"}
    assert all(c.passed for c in checks.values())
    assert checks["raw_events_rows_reconcile"].metadata["rows_read"].value == 3

    # loaded_at / quarantined_at come from the run's as-of tag, not the wall clock
    with connect(tmp_path / "w.duckdb") as con:
        assert con.execute("select distinct _loaded_at from raw_events").fetchall() == [(AS_OF,)]
        assert con.execute("select distinct quarantined_at from quarantine_orders").fetchall() == [(AS_OF,)]

    again = _run(tmp_path)
    assert again.success
    assert _metadata(again, "raw_events")["files_skipped"] == 1
    assert _metadata(again, "raw_events")["rows_read"] == 0
