"""marketing/roles.yaml: each role rule, scopes per journey and folder, the two-person rule, and
errors as file:line: field: message."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers_governance import ROLES, _shipped_roles_rules, git, governed_marketing, write_journey  # noqa: F401

from crmflow.governance.approvals import GovernanceError, Subject, approve, gate, switch
from crmflow.governance.roles import load_governance
from crmflow.governance.subjects import subject_for
from crmflow.governance.versions import git_authors, journey_version
from crmflow.settings import REPO_ROOT
from crmflow.warehouse import apply_migrations, open_warehouse
from crmflow.yaml_config import ConfigFileError

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _governance(tmp_path: Path, roles: str = ROLES):
    (tmp_path / "roles.yaml").write_text(roles, encoding="utf-8")
    return load_governance(tmp_path)


def test_shipped_roles_load_and_require_approval() -> None:
    shipped = load_governance(REPO_ROOT / "marketing")
    assert shipped.required and shipped.config.approval.two_person
    assert shipped.holders("approver", "win_back") == ["omar", "admin"]
    assert shipped.holders("approver", "b2b_renewal") == ["omar", "sofia", "admin"]
    assert shipped.holders("launcher", "win_back") == ["omar", "admin"]


def test_each_role_holds_only_its_own_powers(tmp_path: Path) -> None:
    g = _governance(tmp_path)
    journey, path = "cart_nudge", "journeys/cart_nudge.yaml"
    assert [who for who in ("ana", "ben", "bo", "lia", "oz", "root") if g.has_role(who, "approver", journey, path)] \
        == ["ana", "ben", "root"]
    assert [who for who in ("ana", "ben", "bo", "lia", "oz", "root") if g.has_role(who, "launcher", journey, path)] \
        == ["lia", "root"]
    assert [who for who in ("ana", "ben", "bo", "lia", "oz", "root") if g.has_role(who, "author", journey, path)] \
        == ["ana", "root"]
    assert g.has_role("oz", "operator", journey) and not g.has_role("oz", "author", journey)
    assert g.has_role("BEN@example.com", "approver", journey)  # by email, any case
    assert not g.has_role("nobody", "approver", journey)


def test_a_scoped_role_applies_to_matching_journeys_and_folders_only(tmp_path: Path) -> None:
    g = _governance(tmp_path)
    assert g.has_role("bo", "approver", "b2b_renewal", "journeys/b2b_renewal.yaml")
    assert g.has_role("bo", "approver", "gold_welcome", "journeys/vip/gold_welcome.yaml")  # by folder
    assert not g.has_role("bo", "approver", "win_back", "journeys/win_back.yaml")


def test_no_roles_file_means_approval_not_required(tmp_path: Path) -> None:
    g = load_governance(tmp_path)
    assert not g.required and g.source is None


@pytest.mark.parametrize(("roles", "expected"), [
    ("approval:\n  requried: true\npeople: []\n", "roles.yaml:2: approval.requried: unknown key 'requried'"),
    ("people:\n  - id: ana\n    email: ana@example.com\n    roles: [aprover]\n", "roles.yaml:4: people[0].roles"),
    ("people:\n  - id: ana\n    email: ana@x.com\n    roles: [author]\n  - id: ana\n    email: b@x.com\n"
     "    roles: [author]\n", "two people have the id 'ana'"),
])
def test_a_mistake_is_one_line_naming_file_line_and_field(tmp_path: Path, roles: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as err:
        _governance(tmp_path, roles)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_two_person_rule_and_who_may_approve_or_switch(tmp_path: Path) -> None:
    marketing = governed_marketing(tmp_path, author="ana")
    file = marketing / "journeys" / "cart_nudge.yaml"
    g = load_governance(marketing)
    subject = subject_for(file, "cart_nudge", "growth@example.com", marketing)
    assert subject.authors == ("ana@example.com", "growth@example.com")  # git author + owner
    assert subject.version == journey_version(file) and subject.path == "journeys/cart_nudge.yaml"
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        with pytest.raises(GovernanceError, match=r"ana is an author of cart_nudge .*two-person rule needs another "
                                                  r"approver \(ben, root\)"):
            approve(wh, g, subject, "ana", None, AT)
        for who, role in (("lia", "approver"), ("oz", "approver"), ("bo", "approver")):
            with pytest.raises(GovernanceError, match=f"{who} does not hold the {role} role for journey cart_nudge"):
                approve(wh, g, subject, who, None, AT)
        with pytest.raises(GovernanceError, match="no person 'eve'"):
            approve(wh, g, subject, "eve", None, AT)
        with pytest.raises(GovernanceError, match="ben does not hold the launcher role"):
            switch(wh, g, subject, "ben", "disable", None, AT)
        assert not gate(wh, g, subject).runs
        assert approve(wh, g, subject, "ben", "reviewed", AT)
        assert not approve(wh, g, subject, "ben", "again", AT)  # once per person and version
        assert gate(wh, g, subject).state == "approved"
        switch(wh, g, subject, "lia", "disable", "bad audience", AT.replace(hour=10))
        assert gate(wh, g, subject).state == "disabled" and "lia" in gate(wh, g, subject).reason
        switch(wh, g, subject, "root", "enable", None, AT.replace(hour=11))  # admin holds every role
        assert gate(wh, g, subject).state == "approved"
        assert wh.fetch_rows("select action, actor from governance_audit order by recorded_at") == [
            ("approve", "ben"), ("disable", "lia"), ("enable", "root")]


def test_two_person_off_lets_the_author_approve(tmp_path: Path) -> None:
    marketing = governed_marketing(tmp_path, roles=ROLES.replace("two_person: true", "two_person: false"))
    g = load_governance(marketing)
    subject = subject_for(marketing / "journeys" / "cart_nudge.yaml", "cart_nudge", "growth@example.com", marketing)
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        assert approve(wh, g, subject, "ana", None, AT) and gate(wh, g, subject).runs


def test_an_approval_stops_counting_when_the_approver_loses_the_role(tmp_path: Path) -> None:
    g = _governance(tmp_path)
    subject = Subject("cart_nudge", "journeys/cart_nudge.yaml", "v1" * 32, ("ana@example.com",))
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        approve(wh, g, subject, "ben", None, AT)
        assert gate(wh, g, subject).runs
        demoted = _governance(tmp_path, ROLES.replace("    roles: [approver]\n", "    roles: [author]\n", 1))
        decision = gate(wh, demoted, subject)
        assert not decision.runs and "ben no longer holds the approver role" in decision.reason
        # The owner counts as an author too: an approver who owns the journey cannot approve it.
        owned = Subject("cart_nudge", "journeys/cart_nudge.yaml", "v2" * 32, ("ben@example.com",))
        with pytest.raises(GovernanceError, match="ben is an author"):
            approve(wh, g, owned, "ben", None, AT)


def test_an_uncommitted_edit_is_authored_by_the_local_git_user(tmp_path: Path) -> None:
    marketing = governed_marketing(tmp_path, author="ben")
    file = marketing / "journeys" / "cart_nudge.yaml"
    assert git_authors(file) == ["ben@example.com"]
    write_journey(marketing, subject="Still there?")
    assert git_authors(file) == ["ana@example.com", "ben@example.com"]  # ana (local user) edited ben's version
    git(tmp_path, "commit", "-qam", "edit", author="ana")
    assert git_authors(file) == ["ana@example.com"]


def test_the_demo_approves_committed_versions_only_by_someone_who_did_not_write_them(tmp_path: Path) -> None:
    from crmflow.journeys.runner import JourneyConfig
    from orchestration.cli_journeys import approve_for_demo

    marketing = governed_marketing(tmp_path, author="ana")
    config = JourneyConfig(marketing)
    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        apply_migrations(wh)
        lines = approve_for_demo(config, wh, AT)  # then the settings (tests/test_governance_settings.py)
        assert len(lines) == 2 and lines[0].startswith("demo: approved cart_nudge version ") and lines[0].endswith(" as ben")
        assert approve_for_demo(config, wh, AT) == []  # already approved: nothing to do
        write_journey(marketing, subject="Edited")
        assert approve_for_demo(config, wh, AT) == [
            "demo: cart_nudge has an uncommitted edit: not approved, it will not send "
            "(`crmflow journeys approve cart_nudge --as <approver>`)"]
        assert wh.fetch_rows("select approver from journey_approvals where journey_id = 'cart_nudge'") == [("ben",)]
