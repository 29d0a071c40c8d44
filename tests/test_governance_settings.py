"""The launcher's approval of the caps and channels settings (marketing/channels.yaml + policies.yaml,
crmflow/governance/settings_approval.py): only a launcher (or admin) may approve them (one error
line, exit 2, otherwise); while the current settings version is not approved dispatch holds (nothing
reaches the local provider, every message stays planned, the report says why); after a launcher's
approval it sends; an edit of channels.yaml withdraws the approval (new hash) until the next one.
Every approval is a governance_audit row. DuckDB end to end; the settings gate also on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_governance import ROLES, _shipped_roles_rules, git, governed_marketing  # noqa: F401
from helpers_journeys import ts
from helpers_postgres import postgres_url, postgres_warehouse  # noqa: F401 (fixtures)
from helpers_reliability import (
    AS_OF,
    ENVIRONMENT,
    channels_yaml,
    journey_yaml,
    policies_yaml,
    providers_running,
    seed_new_users_and_tick,
    user_profile,
)
from typer.testing import CliRunner

from connectors.channels.config import load_channels_config
from connectors.channels.factory import build_channels
from crmflow.governance.approvals import GovernanceError, approve, history
from crmflow.governance.roles import load_governance
from crmflow.governance.settings_approval import (
    SETTINGS_SUBJECT,
    approve_settings,
    settings_gate,
    settings_version,
)
from crmflow.governance.subjects import subject_for
from crmflow.journeys.runner import JourneyConfig, dispatch_all, tick_journey_file
from crmflow.warehouse import Warehouse, apply_migrations, open_warehouse
from orchestration.cli import app

USERS = 4


def _marketing(root: Path) -> Path:
    """roles.yaml (approval required; lia is the launcher, ben an approver), an email and an sms
    journey, policies.yaml and channels.yaml sending to the local providers; not in git."""
    marketing = root / "marketing"
    (marketing / "journeys").mkdir(parents=True)
    (marketing / "roles.yaml").write_text(ROLES, encoding="utf-8")
    for channel in ("email", "sms"):
        (marketing / "journeys" / f"rel_{channel}.yaml").write_text(journey_yaml(f"rel_{channel}", channel))
    (marketing / "policies.yaml").write_text(policies_yaml())
    (marketing / "channels.yaml").write_text(channels_yaml(max_attempts=1))
    return marketing


def _cli(marketing: Path, warehouse: Path, *args: str, env: dict[str, str] | None = None):
    env = {"CRMFLOW_MARKETING_DIR": str(marketing), "CRMFLOW_WAREHOUSE": str(warehouse), **(env or {})}
    return CliRunner().invoke(app, [*args], env=env)


def _states(wh: Warehouse) -> list[tuple]:
    return wh.fetch_rows("select channel, state, count(*) from send_ledger group by 1, 2 order by 1, 2")


def test_only_a_launcher_approves_settings_and_dispatch_holds_until_then(tmp_path: Path) -> None:
    marketing = _marketing(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    config, governance = JourneyConfig(marketing), load_governance(marketing)
    rows = [user_profile(i) for i in range(USERS)]
    with open_warehouse(warehouse) as wh:
        apply_migrations(wh)
        for channel in ("email", "sms"):  # the journeys themselves are approved (by ben, an approver)
            file = marketing / "journeys" / f"rel_{channel}.yaml"
            approve(wh, governance, subject_for(file, f"rel_{channel}", None, marketing), "ben", None, AS_OF)
        seed_new_users_and_tick(wh, marketing, ["email"], rows)
        decisions = wh.scalar("select count(*) from journey_decisions")

    with providers_running() as providers:
        channels = build_channels(load_channels_config(marketing / "channels.yaml"), ENVIRONMENT, tmp_path / "out",
                                  environ=providers.env(), sleep=lambda _s: None)
        with open_warehouse(warehouse) as wh:  # not approved: holds, changes nothing
            report = dispatch_all(wh, config, AS_OF, channels, None)
            assert report.sent == report.claimed == 0 and report.settings == "not_approved"
            assert "is not approved" in report.held and "`crmflow journeys approve-settings --as <launcher>`" in report.held
            assert "a launcher (lia, root)" in report.held, report.held
            assert report.metadata()["held"] == report.held
            assert _states(wh) == [("email", "planned", USERS)]
            assert wh.scalar("select count(*) from journey_decisions") == decisions  # no policy ran either
        assert providers.accepted() == {}
        held = _cli(marketing, warehouse, "dispatch", "--as-of", AS_OF.isoformat(),
                    env={**providers.env(), "CRMFLOW_OUTBOX_DIR": str(tmp_path / "out")})
        assert held.exit_code == 0 and held.stdout.startswith("dispatch held as of "), held.output
        assert providers.accepted() == {}

        for who, named in (("ben", "ben does not hold the launcher role for the caps and channels settings"),
                           ("nobody", "no person 'nobody'")):
            denied = _cli(marketing, warehouse, "journeys", "approve-settings", "--as", who)
            lines = denied.stderr.strip().splitlines()
            assert denied.exit_code == 2 and len(lines) == 1 and lines[0].startswith("crmflow: error: "), denied.output
            assert named in lines[0] and "Traceback" not in denied.output, lines[0]
        ok = _cli(marketing, warehouse, "journeys", "approve-settings", "--as", "lia", "--comment", "caps reviewed",
                  "--at", "2026-11-20T12:01:00+00:00")
        assert ok.exit_code == 0 and ok.stdout.startswith("approved the caps and channels settings"), ok.output
        assert "now approved: settings version" in ok.stdout and "approved by lia" in ok.stdout, ok.stdout
        listed = _cli(marketing, warehouse, "journeys", "list")
        assert "(settings)" in listed.stdout and "approved by lia" in listed.stdout, listed.output

        with open_warehouse(warehouse) as wh:  # approved: sends
            report = dispatch_all(wh, config, AS_OF, channels, None)
            assert report.sent == USERS and report.settings == "approved" and not report.held
            assert _states(wh) == [("email", "sent", USERS)]
        assert sorted(providers.accepted().values()) == [1] * USERS

        # An edit of channels.yaml is a new settings version: the approval is withdrawn.
        version = settings_version(marketing)
        (marketing / "channels.yaml").write_text(channels_yaml(max_attempts=2))
        assert settings_version(marketing) != version
        with open_warehouse(warehouse) as wh:
            tick_journey_file(wh, config, marketing / "journeys" / "rel_sms.yaml", AS_OF)  # plans sms
            report = dispatch_all(wh, config, AS_OF, channels, None)
            assert report.sent == 0 and f"last approved {version[:12]} by lia" in report.held, report.held
            assert _states(wh) == [("email", "sent", USERS), ("sms", "planned", USERS)]
        assert len(providers.accepted()) == USERS  # the email ones only
        assert _cli(marketing, warehouse, "journeys", "approve-settings", "--as", "root",
                    "--at", "2026-11-20T12:05:00+00:00").exit_code == 0  # an admin holds every role
        with open_warehouse(warehouse) as wh:
            assert dispatch_all(wh, config, AS_OF, channels, None).sent == USERS
            assert _states(wh) == [("email", "sent", USERS), ("sms", "sent", USERS)]
            audit = [(r["action"], r["journey_id"], r["actor"], r["detail"]) for r in history(wh, SETTINGS_SUBJECT)]
        assert sorted(providers.accepted().values()) == [1] * (2 * USERS)
    assert audit == [("approve", SETTINGS_SUBJECT, "root", None), ("approve", SETTINGS_SUBJECT, "lia", "caps reviewed")]


def test_deleting_a_settings_file_is_a_change_and_a_lost_role_lapses_the_approval(tmp_path: Path) -> None:
    marketing = _marketing(tmp_path)
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        governance = load_governance(marketing)
        assert approve_settings(wh, governance, marketing, "lia", None, ts("2026-03-01T10:00"))[0]
        assert not approve_settings(wh, governance, marketing, "lia", None, ts("2026-03-01T10:05"))[0]  # once
        assert settings_gate(wh, governance, marketing).state == "approved"
        demoted = load_governance(marketing, {"CRMFLOW_ROLES_FILE": str(_roles(tmp_path, "lia", "author"))})
        lapsed = settings_gate(wh, demoted, marketing)
        assert not lapsed.runs and "lia no longer holds the launcher role" in lapsed.reason, lapsed.reason
        with pytest.raises(GovernanceError, match="lia does not hold the launcher role"):
            approve_settings(wh, demoted, marketing, "lia", None, ts("2026-03-01T10:10"))
        (marketing / "policies.yaml").unlink()  # the defaults would apply: a new version
        assert settings_gate(wh, governance, marketing).state == "not_approved"
        off = load_governance(marketing, {"CRMFLOW_ROLES_FILE": str(_roles(tmp_path, "lia", "launcher", False))})
        assert settings_gate(wh, off, marketing).state == "not_required"  # approval: {required: false}


def _roles(root: Path, who: str, role: str, required: bool = True) -> Path:
    path = root / f"roles_{who}_{role}_{required}.yaml"
    text = ROLES.replace("    roles: [launcher]\n", f"    roles: [{role}]\n", 1)
    path.write_text(text.replace("required: true", f"required: {str(required).lower()}", 1), encoding="utf-8")
    return path


def test_the_demo_approves_the_committed_settings_as_the_first_launcher(tmp_path: Path) -> None:
    from orchestration.cli_journeys import approve_for_demo

    marketing = governed_marketing(tmp_path)
    (marketing / "channels.yaml").write_text(channels_yaml())
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "channels")
    config = JourneyConfig(marketing)
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        lines = approve_for_demo(config, wh, ts("2026-03-01T10:00"))
        assert lines[-1].startswith("demo: approved the caps and channels settings (channels.yaml, policies.yaml) "
                                    "version ") and lines[-1].endswith(" as lia"), lines
        assert approve_for_demo(config, wh, ts("2026-03-01T10:05")) == []
        (marketing / "channels.yaml").write_text(channels_yaml(max_attempts=2))  # uncommitted: not approved
        assert approve_for_demo(config, wh, ts("2026-03-01T10:10")) == [
            "demo: channels.yaml/policies.yaml have an uncommitted edit: settings not approved, dispatch holds "
            "(`crmflow journeys approve-settings --as <launcher>`)"]
        assert not settings_gate(wh, config.governance(), marketing).runs


def test_the_settings_gate_is_the_same_on_postgres(tmp_path: Path, postgres_warehouse: Warehouse) -> None:  # noqa: F811
    marketing = _marketing(tmp_path)
    governance = load_governance(marketing)
    apply_migrations(postgres_warehouse)
    assert settings_gate(postgres_warehouse, governance, marketing).state == "not_approved"
    approve_settings(postgres_warehouse, governance, marketing, "lia", "ok", ts("2026-03-01T10:00"))
    decision = settings_gate(postgres_warehouse, governance, marketing)
    assert decision.runs and "approved by lia at 2026-03-01T10:00:00+00:00" in decision.reason, decision.reason
    (marketing / "channels.yaml").write_text(channels_yaml(max_attempts=2))
    assert settings_gate(postgres_warehouse, governance, marketing).state == "not_approved"


def test_the_demo_approvals_let_the_shipped_marketing_folder_send(tmp_path: Path) -> None:
    """`make demo` keeps sending: on a copy of the shipped marketing folder and roles.yaml (outside git,
    so as shipped) the demo's approval step leaves every journey and the settings approved."""
    import shutil

    from crmflow.journeys.loader import journey_files
    from orchestration.cli_journeys import approve_for_demo

    marketing = Path(shutil.copytree(Path(__file__).resolve().parents[1] / "marketing", tmp_path / "marketing"))
    config = JourneyConfig(marketing)
    assert config.governance().required  # the shipped roles.yaml, not the suite's approval-off file
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        assert not config.settings_gate(wh).runs
        lines = approve_for_demo(config, wh, ts("2026-03-01T10:00"))
        assert lines[-1].startswith("demo: approved the caps and channels settings") and lines[-1].endswith(" as omar")
        assert config.settings_gate(wh).state == "approved"
        for file in journey_files(config.journeys_dir):
            journey = config.load(file).journey
            assert journey is not None and config.gate(wh, file, journey).runs, file.name


def test_the_dispatch_asset_says_it_held_and_sends_after_the_approval(tmp_path: Path) -> None:
    import dagster as dg
    from helpers_journeys import event, make_customer_tables, profile

    from assets.journeys import build_journey_assets
    from orchestration.asof import as_of_tags
    from orchestration.resources import CrmflowSettingsResource, WarehouseResource
    from orchestration.resources_journeys import JourneyChannelsResource

    marketing = governed_marketing(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    with open_warehouse(warehouse) as wh:
        apply_migrations(wh)
        make_customer_tables(wh, customer_profile=[profile("u1")],
                             events_stitched=[event("e1", "u1", "checkout_started", "2026-03-01T10:00")])
        file = marketing / "journeys" / "cart_nudge.yaml"
        approve(wh, load_governance(marketing), subject_for(file, "cart_nudge", None, marketing), "ben", None,
                ts("2026-03-01T11:00"))
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "settings": CrmflowSettingsResource(landing_dir=str(tmp_path), outbox_dir=str(tmp_path / "outbox"),
                                            export_dir=str(tmp_path / "exports"), marketing_dir=str(marketing)),
        "journey_channels": JourneyChannelsResource(outbox_dir=str(tmp_path / "outbox"), outbox_only=True),
    }

    def tick(as_of: str) -> tuple[dict, list[tuple]]:
        result = dg.materialize(build_journey_assets(marketing / "journeys", mart_deps=[]), resources=resources,
                                tags=as_of_tags(ts(as_of)))
        assert result.success
        [dispatched] = [m for m in result.asset_materializations_for_node("journey_dispatch")]
        with open_warehouse(warehouse) as wh:
            return ({k: v.value for k, v in dispatched.metadata.items()},
                    wh.fetch_rows("select user_id, state from send_ledger"))

    metadata, ledger = tick("2026-03-01T12:00")
    assert ledger == [("u1", "planned")] and metadata["sent"] == 0
    assert metadata["settings_approval"] == "not_approved" and "approve-settings" in metadata["held"], metadata
    with open_warehouse(warehouse) as wh:
        approve_settings(wh, load_governance(marketing), marketing, "lia", None, ts("2026-03-01T12:30"))
    metadata, ledger = tick("2026-03-01T13:00")
    assert ledger == [("u1", "sent")] and metadata["settings_approval"] == "approved" and "held" not in metadata
