"""A crafted governed world for tests/test_governance_*.py: a marketing folder in its own git
repository (so the author of each journey version is a known git author), a roles.yaml, customer
tables, and a small email journey."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

ROLES = """\
approval:
  required: true
  two_person: true
people:
  - id: ana
    email: ana@example.com
    roles: [author, approver]
  - id: ben
    email: ben@example.com
    roles: [approver]
  - id: bo
    email: bo@example.com
    roles:
      - role: approver
        only: ["b2b_*", "journeys/vip/*"]
  - id: lia
    email: lia@example.com
    roles: [launcher]
  - id: oz
    email: oz@example.com
    roles: [operator]
  - id: root
    email: root@example.com
    roles: [admin]
"""

JOURNEY = """\
id: {jid}
name: Checkout nudge
owner: {owner}
trigger:
  type: event
  event: checkout_started
  lookback: 1d
templates:
  nudge:
    channel: email
    locales:
      en-US:
        subject: "{subject}"
        body: "Your cart is waiting."
steps:
  - id: nudge_email
    type: send
    channel: email
    template: nudge
"""


@pytest.fixture(autouse=True)
def _shipped_roles_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Governance tests read the roles of their own marketing folder, not the suite-wide override."""
    monkeypatch.delenv("CRMFLOW_ROLES_FILE", raising=False)


def git(repo: Path, *args: str, author: str = "ana") -> str:
    env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@example.com",
           "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": f"{author}@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(repo)}
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout


def governed_marketing(root: Path, roles: str = ROLES, jid: str = "cart_nudge", owner: str = "growth@example.com",
                       author: str = "ana") -> Path:
    """root/marketing with roles.yaml and one journey, committed by `author` (local git user: ana)."""
    marketing = root / "marketing"
    (marketing / "journeys").mkdir(parents=True)
    (marketing / "roles.yaml").write_text(roles, encoding="utf-8")
    write_journey(marketing, jid, owner=owner)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ana@example.com")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "journey", author=author)
    return marketing


def write_journey(marketing: Path, jid: str = "cart_nudge", subject: str = "Forgot something?",
                  owner: str = "growth@example.com", text: str | None = None) -> Path:
    path = marketing / "journeys" / f"{jid}.yaml"
    path.write_text(textwrap.dedent(text) if text else JOURNEY.format(jid=jid, owner=owner, subject=subject),
                    encoding="utf-8")
    return path
