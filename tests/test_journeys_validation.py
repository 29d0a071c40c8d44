"""Journey YAML validation: the shipped examples are valid; every broken fixture reports its
mistake as file:line: field: reason; the CLI exits 1 on errors."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmflow.journeys.loader import load_journey_file, load_journeys
from crmflow.journeys.refs import load_refs
from crmflow.journeys.templates import sms_info
from crmflow.settings import REPO_ROOT

BROKEN = REPO_ROOT / "tests" / "fixtures" / "journeys_broken"
EXAMPLES = REPO_ROOT / "marketing" / "journeys"
BROKEN_FILES = sorted(BROKEN.glob("*.yaml"))
REFS = load_refs(REPO_ROOT / "marketing")  # what `crmflow journeys validate` checks references against


def test_corpus_has_at_least_twenty_distinct_mistakes() -> None:
    expectations = {p.read_text(encoding="utf-8").splitlines()[0] for p in BROKEN_FILES}
    assert len(BROKEN_FILES) >= 20 and len(expectations) == len(BROKEN_FILES)


@pytest.mark.parametrize("path", BROKEN_FILES, ids=[p.stem for p in BROKEN_FILES])
def test_broken_file_reports_expected_error_with_line(path: Path) -> None:
    expected = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    loaded = load_journey_file(path, refs=REFS)
    assert not loaded.ok and loaded.journey is None
    text = loaded.error_text()
    assert expected in text, text
    for line in text.splitlines():
        assert re.match(rf"^{re.escape(str(path))}:\d+: ", line), line
    # the line points into the file (not the header comment)
    assert all(1 < e.line <= len(path.read_text(encoding="utf-8").splitlines()) for e in loaded.errors)


def test_unknown_key_points_at_its_own_line() -> None:
    loaded = load_journey_file(BROKEN / "b08_bad_duration.yaml")
    (error,) = loaded.errors
    lines = (BROKEN / "b08_bad_duration.yaml").read_text(encoding="utf-8").splitlines()
    assert "duration: 2 days" in lines[error.line - 1]
    assert error.field == "steps[1].duration"


def test_shipped_examples_are_valid() -> None:
    loaded = load_journeys(EXAMPLES, refs=REFS)
    assert not [str(w) for j in loaded for w in j.warnings]
    assert {j.key for j in loaded} >= {"welcome_series", "abandoned_cart", "win_back", "churn_risk_rescue",
                                       "vip_upgrade", "birthday_coupon", "b2b_renewal"}
    assert all(j.ok for j in loaded), "\n".join(j.error_text() for j in loaded)


def test_cli_validate_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.cli import app

    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", str(REPO_ROOT / "marketing"))
    runner = CliRunner()
    ok = runner.invoke(app, ["journeys", "validate", str(EXAMPLES)])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["journeys", "validate", str(BROKEN / "b05_unknown_template.yaml")])
    assert bad.exit_code == 1
    assert "b05_unknown_template.yaml:18: steps[0].template: unknown template 'helo'" in bad.output
    listing = runner.invoke(app, ["journeys", "list"])
    assert listing.exit_code == 0 and "win_back" in listing.output


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("€" * 80, "GSM-7", 1), ("€" * 81, "GSM-7", 2),
     ("你" * 70, "UCS-2", 1), ("你" * 71, "UCS-2", 2), ("a" * 306, "GSM-7", 2), ("a" * 307, "GSM-7", 3)],
)
def test_sms_segments(text: str, encoding: str, segments: int) -> None:
    info = sms_info(text)
    assert (info.encoding, info.segments) == (encoding, segments)


def test_cli_validate_fails_on_references_to_unknown_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.cli import app

    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", str(REPO_ROOT / "marketing"))
    result = CliRunner().invoke(app, ["journeys", "validate", str(BROKEN / "b34_unknown_segment_name.yaml")])
    assert result.exit_code == 1
    assert "b34_unknown_segment_name.yaml:11: audience.segments[0].segment: unknown segment 'high'" in result.output
    assert "value_high" in result.output  # the message lists the real names


TAGGED = """id: tagged
name: Tags
owner: qa
trigger: {type: segment, family: lifecycle, segment: new}
audience:
  tags: {any: [big_spender, vip_call], none: [contacted]}
steps:
  - {id: mark, type: add_tag, tag: contacted}
"""


def test_unknown_tag_warns_but_does_not_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.cli import app

    path = tmp_path / "tagged.yaml"
    path.write_text(TAGGED, encoding="utf-8")
    loaded = load_journey_file(path, refs=REFS)
    assert loaded.ok
    # big_spender is a rule tag, contacted is added by the journey itself; vip_call may be a manual tag
    assert [(w.line, w.field) for w in loaded.warnings] == [(6, "audience.tags.any[1]")]
    assert "'vip_call'" in loaded.warnings[0].message
    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", str(REPO_ROOT / "marketing"))
    result = CliRunner().invoke(app, ["journeys", "validate", str(path)])
    assert result.exit_code == 0 and "warning: " in result.output and "1 valid, 0 invalid" in result.output


def test_reference_checks_skip_config_files_that_are_absent(tmp_path: Path) -> None:
    path = tmp_path / "b37_unknown_banner_slot.yaml"
    path.write_text((BROKEN / path.name).read_text(encoding="utf-8"), encoding="utf-8")
    assert load_journey_file(path, refs=load_refs(tmp_path)).ok  # no banners.yaml: nothing to check
    assert not load_journey_file(path, refs=REFS).ok


def test_docs_examples_name_real_segments_queues_rules_and_creatives() -> None:
    text = (REPO_ROOT / "docs" / "journeys.md").read_text(encoding="utf-8")
    segments = re.findall(r"family: (\w+), segment: (\w+)", text)
    assert segments and all(REFS.segment_known(f, s) for f, s in segments), segments
    checks = {"queue": REFS.task_queues, "rule": REFS.task_rules, "creative_id": set(REFS.banner_creatives or {}),
              "slot": set(REFS.banner_slots or {})}
    for key, known in checks.items():
        used = re.findall(rf"\b{key}: (\w+)", text)
        assert used and set(used) <= set(known or ()), (key, used)
