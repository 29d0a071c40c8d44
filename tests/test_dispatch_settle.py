"""Issue 15 steps 1-3 on both engines: a dead worker's claims are reconciled by how far they got
(claimed -> planned, requested -> unknown); delivery events carrying the message key settle unknown
(and correct lost / failed) rows as sent with the event id; unknown rows past the grace period are
closed as lost or resent once per channel; `ledger status` shows true totals."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from helpers_dispatch import build_dispatch_world
from helpers_postgres import postgres_url  # noqa: F401 - fixture
from helpers_reliability import AS_OF, channels_yaml, policies_yaml
from typer.testing import CliRunner

from crmflow.journeys.dispatch import DispatchReport, reconcile
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.settle import close_after_grace, settle_from_events
from crmflow.warehouse import open_warehouse

USERS = 12


@pytest.fixture(params=["duckdb", "postgres"])
def world(request, tmp_path: Path):
    if request.param == "duckdb":
        target = str(tmp_path / "w.duckdb")
    else:
        target = request.getfixturevalue("postgres_url")
        with open_warehouse(target) as wh:  # a clean schema for each test on the shared database
            schemas = ", ".join(wh.schemas.values())
            wh.execute(f"drop schema if exists {schemas} cascade; drop schema public cascade; create schema public")
    return build_dispatch_world(tmp_path, target, USERS, ("email",), policies_yaml(), channels_yaml())


def states(wh) -> dict[str, tuple]:
    return {r[0]: tuple(r[1:]) for r in wh.fetch_rows(
        "select user_id, state, outcome, event_id, reason, resends from send_ledger order by user_id")}


def keys(wh) -> dict[str, str]:
    return dict(wh.fetch_rows("select user_id, message_key from send_ledger"))


def test_reconcile_releases_claimed_and_marks_requested_unknown(world) -> None:
    with open_warehouse(world.warehouse) as wh:
        wh.execute("""update send_ledger set state = 'sending', attempts = 1, worker_id = 'dead:1',
                      outcome = case when user_id <= 'u000002' then 'claimed' else 'requested' end
                      where user_id <= 'u000004'""")
        report = DispatchReport()
        reconcile(wh, AS_OF, Policies(), report)
        got = states(wh)
        attempts = dict(wh.fetch_rows("select user_id, attempts from send_ledger"))
    assert report.released == 3 and len(report.reconciled_unknown) == 2
    for uid in ("u000000", "u000001", "u000002"):
        assert got[uid][:2] == ("planned", "released") and "before its request started" in got[uid][3]
        assert attempts[uid] == 0  # the claim's attempt never happened
    for uid in ("u000003", "u000004"):
        assert got[uid][:2] == ("unknown", "unknown") and "not resent" in got[uid][3]
    assert got["u000005"][0] == "planned"


def test_events_settle_unknown_lost_and_failed_rows(world) -> None:
    with open_warehouse(world.warehouse) as wh:
        k = keys(wh)
        wh.execute("""update send_ledger set state = case when user_id = 'u000000' then 'unknown'
                                                       when user_id = 'u000001' then 'lost'
                                                       when user_id = 'u000002' then 'failed'
                                                       when user_id = 'u000003' then 'unknown'
                                                       else 'sent' end
                      where user_id <= 'u000004'""")
        events = [("e1", k["u000000"], "processed"), ("e2", k["u000000"], "delivered"), ("e3", k["u000001"], "bounce"),
                  ("e4", k["u000002"], "delivered"), ("e5", k["u000004"], "delivered"), ("e6", None, "delivered")]
        wh.write_arrow(pa.table({
            "event_id": [e[0] for e in events], "channel": ["email"] * 6, "provider": ["sendgrid"] * 6,
            "message_key": pa.array([e[1] for e in events], pa.string()), "event": [e[2] for e in events],
            "occurred_at": pa.array([AS_OF + timedelta(seconds=i) for i in range(6)], pa.timestamp("us", tz="UTC")),
            "_loaded_at": pa.array([AS_OF] * 6, pa.timestamp("us", tz="UTC"))}), "delivery_events")
        settled = settle_from_events(wh, AS_OF + timedelta(minutes=5))
        again = settle_from_events(wh, AS_OF + timedelta(minutes=6))
        got = states(wh)
    assert settled == 3 and again == 0
    assert got["u000000"][:3] == ("sent", "delivered", "e2") and "was unknown" in got["u000000"][3]
    assert got["u000001"][:3] == ("sent", "bounced", "e3") and "was lost" in got["u000001"][3]
    assert got["u000002"][:3] == ("sent", "delivered", "e4")
    assert got["u000003"][0] == "unknown"  # no event yet
    assert got["u000004"][:3] == ("sent", None, None)  # already sent: untouched


def test_grace_period_closes_lost_or_resends_once(world) -> None:
    policies = Policies.model_validate({"dispatch": {"unknown_grace": "1d", "after_grace": {"email": "resend_once"}}})
    lost_policy = Policies.model_validate({"dispatch": {"unknown_grace": "1d"}})
    with open_warehouse(world.warehouse) as wh:
        wh.execute("""update send_ledger set state = 'unknown', updated_at = $at where user_id <= 'u000001'""",
                   {"at": AS_OF})
        wh.execute("""update send_ledger set state = 'unknown', updated_at = $at where user_id = 'u000002'""",
                   {"at": AS_OF + timedelta(hours=20)})
        assert close_after_grace(wh, AS_OF + timedelta(hours=23), policies.dispatch) == (0, 0)
        assert close_after_grace(wh, AS_OF + timedelta(days=1), policies.dispatch) == (0, 2)
        first = states(wh)
        # resent, unknown again, and past the grace once more: lost (resent once only)
        wh.execute("update send_ledger set state = 'unknown', updated_at = $at where user_id = 'u000000'",
                   {"at": AS_OF + timedelta(days=1)})
        # u000000 was resent once already: lost; u000002 is past its grace now: resent once
        assert close_after_grace(wh, AS_OF + timedelta(days=2), policies.dispatch) == (1, 1)
        second = states(wh)
        wh.execute("update send_ledger set state = 'unknown', updated_at = $at where user_id = 'u000003'",
                   {"at": AS_OF})
        assert close_after_grace(wh, AS_OF + timedelta(days=2), lost_policy.dispatch) == (1, 0)
        third = states(wh)
    assert first["u000000"][0] == "planned" and first["u000000"][4] == 1 and "resent once" in first["u000000"][3]
    assert second["u000000"][:2] == ("lost", "lost") and second["u000002"][0] == "planned"
    assert "no delivery event within 1d" in second["u000000"][3] and "not resent" in second["u000000"][3]
    assert second["u000001"][0] == "planned"
    assert third["u000003"][:2] == ("lost", "lost")


def test_ledger_status_shows_true_totals_and_the_oldest_open_row(world, monkeypatch) -> None:
    from orchestration.cli import app

    with open_warehouse(world.warehouse) as wh:
        wh.execute("update send_ledger set state = 'unknown', reason = 'x; not resent' where user_id <= 'u000008'")
        wh.execute("update send_ledger set planned_at = $at where user_id = 'u000010'",
                   {"at": AS_OF - timedelta(days=3)})
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", world.warehouse)
    import orchestration.cli_ledger as cli_ledger

    monkeypatch.setattr(cli_ledger, "UNKNOWN_SHOWN", 4)
    result = CliRunner().invoke(app, ["ledger", "status"])
    assert result.exit_code == 0, result.output
    assert "totals: planned 3, unknown 9" in result.output
    assert "unknown rows: 9 (the oldest 4 listed)" in result.output
    assert "oldest open row:" in result.output and "planned since 2026-11-17" in result.output
    report = json.loads(CliRunner().invoke(app, ["ledger", "status", "--json"]).output)
    assert report["unknown_total"] == 9 and len(report["unknown"]) == 4 and report["totals"]["planned"] == 3
