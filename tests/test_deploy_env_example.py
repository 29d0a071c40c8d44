""".env.example lists every CRMFLOW_* variable the code reads, with the defaults crmflow really uses."""

import re
from pathlib import Path

from crmflow.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
CODE = ["crmflow", "orchestration", "assets", "connectors"]
NAME = re.compile(r"\bCRMFLOW_[A-Z][A-Z0-9_]*[A-Z0-9]\b")


def example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def names_in_code() -> set[str]:
    found: set[str] = set()
    for folder in CODE:
        for path in (REPO / folder).rglob("*.py"):
            found |= set(NAME.findall(path.read_text()))
    found |= set(NAME.findall((REPO / "profiles.yml").read_text()))
    return found


def test_every_variable_the_code_reads_is_listed_and_nothing_else():
    listed = {name for name in example() if name.startswith("CRMFLOW_")}
    assert names_in_code() - listed == set(), "add these to .env.example"
    assert listed - names_in_code() == set(), "not read anywhere: drop these from .env.example"


def test_the_listed_defaults_are_the_settings_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = {name: value for name, value in example().items() if value}
    assert load_settings(values) == load_settings({})
