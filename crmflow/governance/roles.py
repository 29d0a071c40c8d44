"""marketing/roles.yaml: people, their roles, and where each role applies (a journey or a folder).

Roles: author (edits journeys, banners, task rules), approver (approves a journey version),
launcher (enables/disables a journey, changes caps and channels), operator (works tasks), admin
(every role everywhere). A role applies everywhere, or only to the journeys matching `only:`
patterns (a journey id such as `b2b_*`, or a path under marketing/ such as `journeys/b2b/*`).
Loaded through the shared marketer-YAML loader: a typo is a `file:line: field: message` error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmflow.yaml_config import load_yaml_model

Role = Literal["author", "approver", "launcher", "operator", "admin"]
ROLES: tuple[str, ...] = ("author", "approver", "launcher", "operator", "admin")
# Where the roles live: <marketing dir>/roles.yaml unless CRMFLOW_ROLES_FILE names another file.
ROLES_FILE_ENV = "CRMFLOW_ROLES_FILE"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScopedRole(_Strict):
    role: Role
    only: list[str] = Field(min_length=1)  # journey ids or paths under marketing/ (fnmatch patterns)


class Person(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=60)
    name: str = ""
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    roles: list[Role | ScopedRole] = Field(min_length=1)


class Approval(_Strict):
    required: bool = True  # a journey sends only when its current version is approved
    two_person: bool = True  # the author of a version cannot approve it alone


class RolesConfig(_Strict):
    approval: Approval = Field(default_factory=Approval)
    people: list[Person] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RolesConfig:
        for attr in ("id", "email"):
            seen: set[str] = set()
            for person in self.people:
                value = getattr(person, attr).lower()
                if value in seen:
                    raise ValueError(f"two people have the {attr} {value!r}")
                seen.add(value)
        return self


@dataclass(frozen=True)
class Governance:
    """The roles in force. `source` is the roles file, or None when there is none (approval not required)."""

    config: RolesConfig
    source: Path | None

    @property
    def required(self) -> bool:
        return self.source is not None and self.config.approval.required

    def person(self, who: str) -> Person | None:
        """The person with this id or email (case-insensitive), or None."""
        key = who.strip().lower()
        return next((p for p in self.config.people if key in (p.id.lower(), p.email.lower())), None)

    def has_role(self, who: str, role: str, journey_id: str, journey_path: str = "") -> bool:
        """Whether `who` holds `role` (or admin) for this journey (id, and path under marketing/)."""
        person = self.person(who)
        if person is None:
            return False
        for grant in person.roles:
            name, patterns = (grant, None) if isinstance(grant, str) else (grant.role, grant.only)
            if name not in (role, "admin"):
                continue
            if patterns is None or any(fnmatchcase(journey_id, p) or (journey_path and fnmatchcase(journey_path, p))
                                       for p in patterns):
                return True
        return False

    def holders(self, role: str, journey_id: str, journey_path: str = "") -> list[str]:
        return [p.id for p in self.config.people if self.has_role(p.id, role, journey_id, journey_path)]

    def identities(self, who: str) -> set[str]:
        """Every name `who` goes by (id and email, lower case), for the two-person rule."""
        person = self.person(who)
        return {who.strip().lower()} if person is None else {person.id.lower(), person.email.lower()}


def roles_file(marketing_dir: Path, env: dict[str, str] | None = None) -> Path:
    override = (os.environ if env is None else env).get(ROLES_FILE_ENV, "").strip()
    return Path(override) if override else Path(marketing_dir) / "roles.yaml"


def load_governance(marketing_dir: Path, env: dict[str, str] | None = None) -> Governance:
    """The roles of a marketing folder. No roles file: approval is not required (every journey runs).
    A broken file raises ConfigFileError (a user error naming file:line: field: message)."""
    path = roles_file(marketing_dir, env)
    if not path.exists():
        return Governance(RolesConfig(), None)
    return Governance(load_yaml_model(path, RolesConfig), path)
