"""A journey file as a governance subject (id, path under marketing/, version, authors) and its gate."""

from __future__ import annotations

from pathlib import Path

from crmflow.governance.approvals import Gate, Subject, gate
from crmflow.governance.roles import Governance
from crmflow.governance.versions import journey_version, version_authors
from crmflow.warehouse import Warehouse


def relative_path(path: Path, marketing_dir: Path) -> str:
    """The file's path under the marketing folder (`journeys/win_back.yaml`), for `only:` patterns."""
    try:
        return Path(path).resolve().relative_to(Path(marketing_dir).resolve()).as_posix()
    except ValueError:
        return f"journeys/{Path(path).name}"


def subject_for(path: Path, journey_id: str, owner: str | None, marketing_dir: Path,
                with_authors: bool = True) -> Subject:
    """with_authors=False skips git (the gate reads the authors recorded with each approval)."""
    authors = tuple(version_authors(path, owner)) if with_authors else ()
    return Subject(journey_id, relative_path(path, marketing_dir), journey_version(path), authors)


def journey_gate(wh: Warehouse, governance: Governance, path: Path, journey_id: str, marketing_dir: Path) -> Gate:
    """The gate of the journey in `path` at its current version (the governance tables must exist)."""
    return gate(wh, governance, subject_for(path, journey_id, None, marketing_dir, with_authors=False))
