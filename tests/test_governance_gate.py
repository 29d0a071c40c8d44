"""The approval gate in the journey tick and dispatch: an unapproved version enrols nobody and sends
nothing and says why; an approval by another approver lets it send on the next tick; an edit
withdraws the approval (new hash); planned rows of an unapproved version wait in the ledger.
DuckDB through the Dagster assets and the CLI; the approval tables also on PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
from helpers_governance import _shipped_roles_rules, governed_marketing, write_journey  # noqa: F401
from helpers_journeys import event, make_customer_tables, profile, ts
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from assets.journeys import build_journey_assets
from crmflow.governance.approvals import approve, history, switch
from crmflow.governance.roles import load_governance
from crmflow.governance.settings_approval import approve_settings
from crmflow.governance.subjects import subject_for
from crmflow.journeys.runner import JourneyConfig, dispatch_all, gated_tick
from crmflow.warehouse import Warehouse, apply_migrations, connect, open_warehouse
from orchestration.asof import as_of_tags
from orchestration.cli import app
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_journeys import JourneyChannelsResource


def _world(tmp_path: Path) -> tuple[Path, Path]:
    marketing = governed_marketing(tmp_path, author="ana")
    warehouse = tmp_path / "wh.duckdb"
    with connect(warehouse) as con:
        make_customer_tables(con, customer_profile=[profile(u) for u in ("u1", "u2", "u3")], events_stitched=[
            event("e1", "u1", "checkout_started", "2026-03-01T10:00"),
            event("e2", "u2", "checkout_started", "2026-03-02T10:00")])
    with open_warehouse(warehouse) as wh:  # the caps and channels settings: approved by the launcher
        apply_migrations(wh)
        approve_settings(wh, load_governance(marketing), marketing, "lia", None, ts("2026-03-01T09:00"))
    return marketing, warehouse


def _tick(tmp_path: Path, marketing: Path, warehouse: Path, as_of: str) -> dict[str, dg.AssetCheckEvaluation]:
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=str(tmp_path / "outbox"),
                                            export_dir=str(tmp_path / "exports"), marketing_dir=str(marketing)),
        "journey_channels": JourneyChannelsResource(outbox_dir=str(tmp_path / "outbox"), outbox_only=True),
    }
    result = dg.materialize(build_journey_assets(marketing / "journeys", mart_deps=[]), resources=resources,
                            tags=as_of_tags(ts(as_of)))
    assert result.success
    return {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


def _cli(marketing: Path, warehouse: Path, *args: str):
    env = {"CRMFLOW_MARKETING_DIR": str(marketing), "CRMFLOW_WAREHOUSE": str(warehouse)}
    return CliRunner().invoke(app, ["journeys", *args], env=env)


def _ledger(warehouse: Path) -> list[tuple]:
    with connect(warehouse) as con:
        return con.execute("select user_id, state from send_ledger order by user_id").fetchall()


def test_unapproved_sends_nothing_until_another_approver_approves_and_an_edit_withdraws_it(tmp_path: Path) -> None:
    marketing, warehouse = _world(tmp_path)
    checks = _tick(tmp_path, marketing, warehouse, "2026-03-01T12:00")
    assert not checks["journey_approved"].passed
    reason = str(checks["journey_approved"].metadata["reason"].value)
    assert "is not approved" in reason and "an approver (ana, ben, root)" in reason, reason
    with connect(warehouse) as con:
        assert con.execute("select count(*) from journey_enrolments").fetchone() == (0,)
        assert con.execute("select decision, reason from journey_decisions").fetchall() == [
            ("skipped", f"governance:not_approved: {reason}")]
    assert _ledger(warehouse) == []

    denied = _cli(marketing, warehouse, "approve", "cart_nudge", "--as", "ana", "--at", "2026-03-01T12:30")
    assert denied.exit_code == 2 and "ana is an author of cart_nudge" in denied.output, denied.output
    ok = _cli(marketing, warehouse, "approve", "cart_nudge", "--as", "ben", "--comment", "looks right",
              "--at", "2026-03-01T12:30")
    assert ok.exit_code == 0 and "approved cart_nudge version" in ok.output and "now approved" in ok.output, ok.output
    listed = _cli(marketing, warehouse, "list")
    assert "approved: version" in listed.output and "approved by ben" in listed.output, listed.output

    checks = _tick(tmp_path, marketing, warehouse, "2026-03-01T13:00")  # the next tick sends
    assert checks["journey_approved"].passed
    assert _ledger(warehouse) == [("u1", "sent")]

    write_journey(marketing, subject="Still thinking it over?")  # an edit: a new version, not approved
    checks = _tick(tmp_path, marketing, warehouse, "2026-03-02T12:00")
    assert not checks["journey_approved"].passed and "is not approved" in str(checks["journey_approved"].metadata["reason"].value)
    assert _ledger(warehouse) == [("u1", "sent")]  # u2 triggered, but nobody enters
    assert "not_approved: version" in _cli(marketing, warehouse, "list").output
    # ana made the uncommitted edit (the checkout's git user): she cannot approve it alone.
    assert _cli(marketing, warehouse, "approve", "cart_nudge", "--as", "ana").exit_code == 2
    assert _cli(marketing, warehouse, "approve", "cart_nudge", "--as", "root", "--at", "2026-03-02T12:30").exit_code == 0
    checks = _tick(tmp_path, marketing, warehouse, "2026-03-02T13:00")
    assert checks["journey_approved"].passed
    assert _ledger(warehouse) == [("u1", "sent"), ("u2", "sent")]
    audit = _cli(marketing, warehouse, "audit", "cart_nudge")
    assert audit.output.count('"action": "approve"') == 2, audit.output


def test_planned_rows_of_an_unapproved_version_wait_and_a_disabled_journey_stops(tmp_path: Path) -> None:
    marketing, warehouse = _world(tmp_path)
    config = JourneyConfig(marketing)
    file = marketing / "journeys" / "cart_nudge.yaml"
    governance = load_governance(marketing)
    channels = JourneyChannelsResource(outbox_dir=str(tmp_path / "outbox"), outbox_only=True).channels()
    at = ts("2026-03-01T12:00")
    with open_warehouse(warehouse) as wh:
        apply_migrations(wh)
        approve(wh, governance, subject_for(file, "cart_nudge", None, marketing), "ben", None, at)
        report, gate = gated_tick(wh, config, file, at)
        assert gate.runs and report.planned == 1  # planned, not dispatched yet
        write_journey(marketing, subject="Edited before dispatch")
        assert dispatch_all(wh, config, at, channels, None).sent == 0
        assert wh.fetch_rows("select state from send_ledger") == [("planned",)]  # held, not dropped
        approve(wh, governance, subject_for(file, "cart_nudge", None, marketing), "ben", None, at)
        switch(wh, governance, subject_for(file, "cart_nudge", None, marketing, False), "lia", "disable",
               "wrong offer", at)
        report, gate = gated_tick(wh, config, file, ts("2026-03-02T12:00"))
        assert not gate.runs and gate.state == "disabled" and "disabled by lia" in report.notes[0]
        assert dispatch_all(wh, config, at, channels, None).sent == 0
        switch(wh, governance, subject_for(file, "cart_nudge", None, marketing, False), "lia", "enable", None,
               ts("2026-03-01T12:05"))
        assert dispatch_all(wh, config, ts("2026-03-01T12:10"), channels, None).sent == 1
        assert wh.fetch_rows("select state from send_ledger") == [("sent",)]


def _governance_rows(wh: Warehouse) -> dict[str, list[tuple]]:
    return {"approvals": wh.fetch_rows("select journey_id, approver, authors, comment, approved_at "
                                       "from journey_approvals order by approved_at"),
            "audit": [tuple(r.values()) for r in history(wh)],
            "decisions": wh.fetch_rows("select journey_id, decision, reason, decided_at from journey_decisions "
                                       "order by decided_at")}


def _governed_run(wh: Warehouse, marketing: Path) -> dict[str, list[tuple]]:
    apply_migrations(wh)
    make_customer_tables(wh, customer_profile=[profile("u1")],
                         events_stitched=[event("e1", "u1", "checkout_started", "2026-03-01T10:00")])
    config = JourneyConfig(marketing)
    file = marketing / "journeys" / "cart_nudge.yaml"
    governance = load_governance(marketing)
    subject = subject_for(file, "cart_nudge", "growth@example.com", marketing)
    blocked, _ = gated_tick(wh, config, file, ts("2026-03-01T11:00"))
    approve(wh, governance, subject, "ben", "ok", ts("2026-03-01T11:30"))
    switch(wh, governance, subject, "lia", "disable", "pause", ts("2026-03-01T11:40"))
    switch(wh, governance, subject, "lia", "enable", None, ts("2026-03-01T11:50"))
    ran, gate = gated_tick(wh, config, file, ts("2026-03-01T12:00"))
    assert blocked.skipped_reason and gate.state == "approved" and ran.entered == 1
    return _governance_rows(wh)


def test_the_approval_tables_are_the_same_on_duckdb_and_postgres(tmp_path: Path,
                                                                postgres_warehouse: Warehouse) -> None:  # noqa: F811
    marketing = governed_marketing(tmp_path)
    with open_warehouse(tmp_path / "wh.duckdb") as duck:
        on_duckdb = _governed_run(duck, marketing)
    on_postgres = _governed_run(postgres_warehouse, marketing)
    assert on_postgres == on_duckdb
    assert [row[1] for row in on_duckdb["audit"]] == ["enable", "disable", "approve"]
    assert on_duckdb["approvals"] == [("cart_nudge", "ben", "ana@example.com,growth@example.com", "ok",
                                       datetime.fromisoformat("2026-03-01T11:30+00:00"))]
