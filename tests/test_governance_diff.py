"""`crmflow journeys diff`: the change in words and, as of the last run, who would enter, leave and
get which message under the old (git) and the new (working) version; read-only."""

from __future__ import annotations

import json
from pathlib import Path

from helpers_governance import _shipped_roles_rules, git  # noqa: F401
from helpers_journeys import event, make_customer_tables, profile, ts
from typer.testing import CliRunner

from crmflow.journeys.diff import describe_changes, impact
from crmflow.journeys.engine import run_tick
from crmflow.journeys.loader import load_journey_file, parse_journey_text
from crmflow.settings import REPO_ROOT
from crmflow.warehouse import connect, open_warehouse
from orchestration.cli import app

OLD = """\
id: cart_diff
name: Cart diff
owner: growth@example.com
trigger: {type: event, event: checkout_started, lookback: 1d}
templates:
  nudge:
    channel: email
    locales: {en-US: {subject: "Forgot something?", body: "Your cart."}}
  second:
    channel: email
    locales: {en-US: {subject: "Last call", body: "Still there."}}
steps:
  - {id: nudge_email, type: send, channel: email, template: nudge}
  - {id: wait_1d, type: wait, duration: 1d}
  - {id: second_email, type: send, channel: email, template: second}
"""
# Germany only, the wait removed (the second email goes at once), the first subject reworded.
NEW = (OLD.replace("trigger:", "audience:\n  fields: [{field: country, op: '=', value: DE}]\ntrigger:")
       .replace("  - {id: wait_1d, type: wait, duration: 1d}\n", "")
       .replace("Forgot something?", "Still deciding?"))
USERS = {"u1": "DE", "u2": "DE", "u3": "DE", "u4": "FR", "u5": "FR", "u6": "FR"}
LAST_RUN = "2026-03-01T12:00"


def _world(tmp_path: Path) -> tuple[Path, Path]:
    """A git checkout with the old version committed and run once; the new version in the work tree."""
    marketing = tmp_path / "marketing"
    (marketing / "journeys").mkdir(parents=True)
    file = marketing / "journeys" / "cart_diff.yaml"
    file.write_text(OLD, encoding="utf-8")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "old")
    warehouse = tmp_path / "wh.duckdb"
    with connect(warehouse) as con:
        make_customer_tables(con, customer_profile=[profile(u, country=c) for u, c in USERS.items()],
                             events_stitched=[event(f"e{u}", u, "checkout_started", "2026-03-01T10:00") for u in USERS])
        run_tick(con, load_journey_file(file).journey, ts(LAST_RUN))  # all six enter, wait at wait_1d
    file.write_text(NEW, encoding="utf-8")
    return marketing, warehouse


def _state(warehouse: Path) -> list[tuple]:
    with connect(warehouse) as con:
        return [con.execute(f"select count(*), count(distinct journey_id) from {t}").fetchone()
                for t in ("journey_enrolments", "send_ledger", "journey_decisions", "journey_ticks")]


def test_the_change_in_words() -> None:
    old = parse_journey_text(OLD, Path("cart_diff.yaml")).journey
    new = parse_journey_text(NEW, Path("cart_diff.yaml")).journey
    changes = describe_changes(old, new)
    assert changes["steps"] == ["step wait_1d removed (wait); users waiting there exit with step_removed"]
    assert len(changes["audience"]) == 1 and "fields" in changes["audience"][0] and "DE" in changes["audience"][0]
    assert changes["templates"] == ["template nudge changed: locales en-US"]
    assert changes["timing"] == [] and changes["other"] == []
    assert describe_changes(new, new) == {k: [] for k in changes}


def test_counts_under_old_and_new_as_of_the_last_run_and_nothing_stays(tmp_path: Path) -> None:
    marketing, warehouse = _world(tmp_path)
    before = _state(warehouse)
    old = parse_journey_text(OLD, Path("cart_diff.yaml")).journey
    new = load_journey_file(marketing / "journeys" / "cart_diff.yaml").journey
    with open_warehouse(warehouse) as wh:
        summary = impact(wh, old, new).summary(sample=2)
    assert _state(warehouse) == before  # rolled back: no scratch journey, nothing changed
    assert summary["as_of"] == ts(LAST_RUN).isoformat()
    assert summary["entering"] == {"old": 6, "new": 3, "only_new": 0, "only_old": 3}
    assert summary["messages"] == {"old": {"nudge_email/nudge": 6},
                                   "new": {"nudge_email/nudge": 3, "second_email/second": 3}}
    assert summary["different_messages"] == 3  # the German three get the second email at once
    assert summary["leaving"] == {"wait_1d": 6}  # waiting at the removed step: exit step_removed
    assert summary["sample"]["only_old"] == ["u4", "u5"]
    assert summary["sample"]["different_messages"][0] == {
        "user_id": "u1", "old": [("nudge_email", "nudge")],
        "new": [("nudge_email", "nudge"), ("second_email", "second")]}


def test_the_cli_diffs_against_a_git_ref(tmp_path: Path) -> None:
    marketing, warehouse = _world(tmp_path)
    env = {"CRMFLOW_MARKETING_DIR": str(marketing), "CRMFLOW_WAREHOUSE": str(warehouse)}
    result = CliRunner().invoke(app, ["journeys", "diff", "cart_diff", "--against", "HEAD"], env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["impact"]["entering"]["new"] == 3 and out["changes"]["templates"]
    bad = CliRunner().invoke(app, ["journeys", "diff", "cart_diff", "--against", "nope"], env=env)
    assert bad.exit_code == 2 and "--against 'nope': no such git commit" in bad.output


def test_every_shipped_journey_diffs_against_itself() -> None:
    for file in sorted((REPO_ROOT / "marketing" / "journeys").glob("*.yaml")):
        journey = load_journey_file(file).journey
        assert journey is not None and describe_changes(journey, journey) == {
            "steps": [], "audience": [], "timing": [], "templates": [], "other": []}, file
