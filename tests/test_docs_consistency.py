"""The docs say what the code does: every list of statuses, reasons and states written in docs/*.md
(tables, bullet lists, sentences) is parsed and compared with the constant the code uses, so the
two cannot drift apart again (issue 17: four different lists of paid statuses, an undocumented goal
status, `1w` written where `7d` was configured, contradicting rules on unknown task queues)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connectors.sources.contracts import CONTRACTS, ORDER_STATUSES
from crmflow.banners.config import BannerConfig
from crmflow.journeys.durations import format_duration, parse_duration
from crmflow.journeys.policy_config import Policies
from crmflow.journeys.refs import load_refs
from crmflow.journeys.schema import DEFAULT_TEMPLATE_LOCALE
from crmflow.journeys.dispatch_ddl import LEASE_TEMPLATE, NEW_LEDGER_STATES
from crmflow.journeys.tables import DECISIONS, JOURNEY_DDL, LEDGER_STATES
from crmflow.order_statuses import order_status_groups
from crmflow.settings import REPO_ROOT
from crmflow.tasks.outcomes import OUTCOMES, QUARANTINE_REASONS
from crmflow.tasks.schema import TASK_SOURCES, TASK_STATUSES, TASKS_DDL

DOCS = REPO_ROOT / "docs"


def doc(name: str) -> str:
    """A doc with its line breaks folded into spaces (a sentence may wrap anywhere)."""
    return re.sub(r"\s+", " ", (DOCS / name).read_text(encoding="utf-8"))


def ticked(text: str) -> list[str]:
    """The `code` words of a piece of doc, in order."""
    return re.findall(r"`([^`]+)`", text)


def between(text: str, start: str, end: str) -> str:
    """The doc text after `start` up to the next `end` (both must be there)."""
    assert start in text, f"docs no longer contain {start!r}: update this test with the docs"
    rest = text.split(start, 1)[1]
    assert end in rest, f"nothing ends {start!r} with {end!r}"
    return rest.split(end, 1)[0]


def first_seen(values) -> list[str]:
    return list(dict.fromkeys(values))


def table_cell(text: str, row_start: str, column: int) -> str:
    """Cell `column` (0 = first) of the first markdown table row beginning with `row_start`."""
    line = next((line for line in text.splitlines() if line.startswith(row_start)), None)
    assert line is not None, f"no table row starts with {row_start!r}: update this test with the docs"
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))  # an escaped \| stays inside its cell
    return cells[column].strip()


# ---- order statuses -------------------------------------------------------------------------------

def test_order_statuses_in_every_doc_are_the_ingest_contract():
    contracts = (DOCS / "data-contracts.md").read_text(encoding="utf-8")
    assert ticked(table_cell(contracts, "| `status` |", 1)) == list(ORDER_STATUSES)
    marketers = doc("marketers.md")
    assert ticked(between(marketers, "Orders arrive with exactly one of four statuses", "Any other")) \
        == list(ORDER_STATUSES)
    assert len(ORDER_STATUSES) == 4, "marketers.md says 'four statuses'"


def test_goal_and_condition_statuses_are_what_journey_validation_accepts():
    accepted = sorted(load_refs(REPO_ROOT / "marketing").order_statuses)
    journeys = doc("journeys.md")
    prose = between(journeys, "are those of the source contract:", "(")
    assert sorted(ticked(prose)) == accepted
    lines = (DOCS / "journeys.md").read_text(encoding="utf-8")
    assert sorted(ticked(table_cell(lines, "| `goal.order_status`, condition `order.status` |", 1))) == accepted


def test_status_groups_in_the_docs_are_the_dbt_vars():
    groups = order_status_groups()
    written = dict(re.findall(r"`(\w+)_order_statuses` \(([^)]*)\)", doc("data-contracts.md")))
    assert {g: tuple(s.strip() for s in v.split(",")) for g, v in written.items()} == groups
    block = between((DOCS / "marketers.md").read_text(encoding="utf-8"), "```yaml\nvars:\n", "```")
    assert {k.removesuffix("_order_statuses"): tuple(v) for k, v in yaml.safe_load(block).items()} == groups


def test_every_written_list_of_a_status_group_is_the_var():
    """`paid_order_statuses`: a, b or `paid_order_statuses` (a, b) anywhere in the docs."""
    groups = order_status_groups()
    found = 0
    for path in sorted(DOCS.glob("*.md")):
        for group, listed in re.findall(r"`(\w+)_order_statuses`(?::| \() ?([a-z_]+(?:, [a-z_]+)*)",
                                        doc(path.name)):
            found += 1
            assert tuple(listed.split(", ")) == groups[group], f"{path.name}: {group}_order_statuses: {listed}"
    assert found >= 3


@pytest.mark.parametrize("name", ["measurement.md", "intelligence.md"])
def test_paid_statuses_named_in_python_stage_docs_are_the_dbt_var(name):
    text = doc(name)
    named = re.findall(r"`paid_order_statuses`[^)]*?today: ((?:`\w+`(?:, )?)+)", text)
    assert named, f"{name} no longer says which statuses the var holds today"
    assert all(tuple(ticked(n)) == order_status_groups()["paid"] for n in named)


# ---- quarantine reasons ---------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["events", "registrations", "orders"])
def test_ingest_quarantine_reasons_are_documented_in_the_order_they_are_checked(source):
    section = re.search(rf"- \*\*{source}\*\*:(.*?)(?= - \*\*| ## )", doc("data-contracts.md")).group(1)
    without_notes = re.sub(r"\([^()]*\)", "", section)  # field names and remarks sit in brackets
    assert first_seen(ticked(without_notes)) == first_seen(rule.reason for rule in CONTRACTS[source].rules)


def test_task_outcome_quarantine_reasons_and_outcomes():
    contracts = doc("data-contracts.md")
    reasons = between(contracts, "reasons, in the order they are checked:", "(")
    assert ticked(reasons) == list(QUARANTINE_REASONS)
    assert between(contracts, "outcome `", "`") == "|".join(OUTCOMES)
    tasks_doc = doc("banners-and-tasks.md")
    assert ticked(between(tasks_doc, "`outcome` is", ".")) == list(OUTCOMES)


# ---- task and ledger states -----------------------------------------------------------------------

def ddl_comment(ddl: str, column: str) -> list[str]:
    line = next(line for line in ddl.splitlines() if line.strip().startswith(f"{column} varchar"))
    return re.findall(r"\w+", line.split("--", 1)[1])


def test_task_statuses_and_sources():
    contracts = (DOCS / "data-contracts.md").read_text(encoding="utf-8")
    operator_tasks = contracts.split("**operator_tasks**", 1)[1]
    assert ticked(table_cell(operator_tasks, "| status |", 2)) == list(TASK_STATUSES)
    assert ticked(table_cell(operator_tasks, "| source |", 2)) == list(TASK_SOURCES)
    assert ddl_comment(TASKS_DDL, "status") == list(TASK_STATUSES)
    assert ddl_comment(TASKS_DDL, "source") == list(TASK_SOURCES)


def test_ledger_states_and_decisions_in_docs_ddl_and_sql():
    contracts = doc("data-contracts.md")
    states = re.findall(r"\w+", between(contracts, "state (", ")"))
    decisions = re.findall(r"\w+", between(contracts, "decision (", ")"))
    assert sorted(states) == sorted(LEDGER_STATES)
    assert decisions == list(DECISIONS)
    # migration 10 lists the first states; later migrations name the states they add
    assert sorted(ddl_comment(JOURNEY_DDL, "state") + list(NEW_LEDGER_STATES)) == sorted(LEDGER_STATES)
    assert all(f"-- state (new in migration 55): {s}" in LEASE_TEMPLATE for s in NEW_LEDGER_STATES)
    assert ddl_comment(JOURNEY_DDL, "decision") == list(DECISIONS)
    reliability = doc("reliability.md")
    final = ticked(between(reliability, "every ledger row ends", ", each"))
    assert set(final) == set(LEDGER_STATES) - {"planned", "sending"}
    # Every state or decision the journey SQL writes is one of them.
    code = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "crmflow" / "journeys").glob("*.py"))
    written_states = set(re.findall(r"set state = '(\w+)'", code))
    written_decisions = set(re.findall(r"'(\w+)' as decision", code)) | set(
        re.findall(r'decision, reason = "(\w+)"', code))
    assert written_states and written_states <= set(LEDGER_STATES)
    assert written_decisions and written_decisions <= set(DECISIONS)


# ---- cap reasons, locales, queues ----------------------------------------------------------------

def test_cap_reason_examples_are_what_the_code_writes():
    journeys = doc("journeys.md")
    for window in ("7d", "1w"):
        assert f"`{window}` gives `3/{format_duration(parse_duration(window))}`" in journeys \
            or f"`window: {window}` gives `cap:email:3/{format_duration(parse_duration(window))}`" in journeys
    defaults = ", ".join(f"{c.channel} {c.max}/{format_duration(c.window)}" for c in Policies().frequency_caps)
    assert f"without this key: {defaults}" in journeys


def test_default_locales_are_the_documented_ones():
    journeys = doc("journeys.md")
    assert f"or `{DEFAULT_TEMPLATE_LOCALE}` when it has several" in journeys
    assert f"so it is {DEFAULT_TEMPLATE_LOCALE}," in journeys
    banner_default = BannerConfig.model_fields["default_locale"].default
    assert f"`default_locale` (`{banner_default}` when unset)" in doc("banners-and-tasks.md")


def test_no_doc_or_config_comment_promises_a_silent_queue_fallback():
    texts = {p.name: re.sub(r"\s+", " ", p.read_text(encoding="utf-8"))
             for p in [*DOCS.glob("*.md"), REPO_ROOT / "marketing" / "task_rules.yaml",
                       REPO_ROOT / "crmflow" / "tasks" / "config.py"]}
    for name, text in texts.items():
        for phrase in ("unknown queues use", "falls back to default", "(else `default`)"):
            assert phrase not in text, f"{name}: {phrase!r} contradicts journey validation (unknown queues rejected)"
    assert "no silent fallback to `default`" in texts["journeys.md"]
    assert "is rejected when journeys are validated" in texts["banners-and-tasks.md"]


def test_parsers_see_a_drift(tmp_path: Path):
    """The helpers above really read the lists: a changed list is noticed (this test cannot pass
    by parsing nothing)."""
    drifted = (DOCS / "data-contracts.md").read_text(encoding="utf-8").replace(
        "`paid`\\|`refunded`\\|`cancelled`\\|`overdue`", "`paid`\\|`refunded`\\|`cancelled`\\|`shipped`")
    assert ticked(table_cell(drifted, "| `status` |", 1)) != list(ORDER_STATUSES)
