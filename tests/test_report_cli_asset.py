"""`crmflow report` and the Dagster measurement/report assets (the dbt measurement models, journey_goals,
journey_measurement, crmflow_report) on a small constructed warehouse."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
from helpers_measurement import (
    add_enrolments,
    add_orders_for,
    add_sends,
    create_inputs,
    materialize_measurement,
    write_journeys,
)
from typer.testing import CliRunner

from orchestration.cli import app


def _warehouse(tmp_path: Path) -> Path:
    # named like the default warehouse: the dbt assets' manifest (crmflow prepare) names its relations'
    # database after the file, and Dagster reads row counts through those names
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    create_inputs(con)
    add_enrolments(con, "j_cart", "t", 30, False, "2026-03-10 12:00+00")
    add_enrolments(con, "j_cart", "h", 30, True, "2026-03-10 12:00+00")
    add_orders_for(con, "t", 15, "2026-03-11 12:00+00")
    add_orders_for(con, "h", 3, "2026-03-11 12:00+00")
    add_sends(con, [(f"m{i}", "j_cart", "c1", None, f"t{i}", "sent", "2026-03-10 13:00+00") for i in range(30)])
    con.close()
    return path


def test_cli_report_writes_the_file_and_prints_progress(tmp_path, monkeypatch):
    warehouse = _warehouse(tmp_path)
    marketing = tmp_path / "marketing"
    write_journeys(marketing / "journeys")
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", str(marketing))
    out = tmp_path / "out" / "r.html"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--as-of", "2026-03-20T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "30 messages sent, 15 orders attributed, 1 journeys with enough data for uplift" in result.output
    assert f"report written to {out}" in result.output
    assert out.exists() and "Holdout uplift" in out.read_text(encoding="utf-8")


def test_cli_report_without_warehouse_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(tmp_path / "missing.duckdb"))
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 2  # a user mistake (docs/operations.md, "Errors")
    assert "no warehouse at" in result.output


def test_cli_report_before_the_dbt_models_fails_in_one_line(tmp_path, monkeypatch):
    """A warehouse the pipeline never ran on (no stg_shop__orders): dbt cannot build the measurement
    models; one line naming the warehouse, exit 2."""
    (tmp_path / "bare").mkdir()
    path = tmp_path / "bare" / "wh.duckdb"  # the same database name as the other tests: one dbt parse
    duckdb.connect(str(path)).close()
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(path))
    result = CliRunner().invoke(app, ["report", "--as-of", "2026-03-20T00:00:00Z"])
    assert result.exit_code == 2, result.output
    assert f"dbt build of the measurement models on {path} failed" in result.output
    assert "stg_shop__orders" in result.output


def test_assets_materialise_tables_report_and_metadata(tmp_path, dbt_manifest, monkeypatch):
    warehouse = _warehouse(tmp_path)
    marketing = tmp_path / "marketing"
    write_journeys(marketing / "journeys")
    result = materialize_measurement(str(warehouse), marketing, tmp_path, monkeypatch)
    assert result.success
    checks = result.get_asset_check_evaluations()
    passed = {c.check_name for c in checks if c.passed}
    # the dbt tests of the models are asset checks; the one Python check is on journey_uplift
    assert {"unique_journey_order_attribution_order_id", "not_above_journey_attribution_delivered__sent",
            "enrolments_reconcile_journey_uplift_inputs_", "one_row_per_measured_journey"} <= passed
    assert all(c.passed for c in checks)
    report = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("crmflow_report")]
    metadata = report[0].materialization.metadata
    assert Path(metadata["path"].value) == tmp_path / "exports" / "report.html"
    assert metadata["messages_sent"].value == 30
    assert metadata["journeys_significant"].value == 1  # 15/30 vs 3/30: z = 3.38, p < 0.001
    assert "Journeys with uplift | 1 of 1" in metadata["key_figures"].value
    uplift = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("journey_uplift")]
    assert "j_cart" in uplift[0].materialization.metadata["uplift"].value
