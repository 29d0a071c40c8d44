"""The launcher's approval of the caps and channels settings (marketing/channels.yaml and
marketing/policies.yaml): what dispatch sends through, and with which caps and quiet hours.

The settings version is the SHA-256 of both files (a missing file counts as absent, so deleting one
is a change too). `crmflow journeys approve-settings --as <launcher>` records an approval of the
current version in journey_approvals under the subject `@settings` (never a journey id) with its
governance_audit row, by someone holding the launcher role (or admin) now. While the current version
is not approved, dispatch holds: it sends nothing, changes no ledger row (planned messages wait) and
says why. Holding, not the last approved copy: the files on disk are what would send. With approval
not required (roles.yaml `approval.required: false`, or no roles file) the settings need none.
No two-person rule: changing caps and channels is the launcher's own act.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from crmflow.governance.approvals import Gate, Subject, insert_approval, person_with
from crmflow.governance.roles import Governance
from crmflow.governance.versions import SHORT, git_authors, has_uncommitted_files
from crmflow.warehouse import Warehouse

SETTINGS_SUBJECT = "@settings"  # journey_approvals.journey_id / governance_audit.journey_id of the settings
SETTINGS_FILES = ("channels.yaml", "policies.yaml")
SETTINGS_WHAT = "the caps and channels settings (channels.yaml, policies.yaml)"


def settings_version(marketing_dir: Path) -> str:
    """SHA-256 over each settings file's name and bytes, or its absence."""
    digest = hashlib.sha256()
    for name in SETTINGS_FILES:
        path = Path(marketing_dir) / name
        data = path.read_bytes() if path.is_file() else None
        digest.update(f"{name}\0{'absent' if data is None else len(data)}\0".encode())
        digest.update(data or b"")
    return digest.hexdigest()


def settings_subject(marketing_dir: Path, with_authors: bool = True) -> Subject:
    """The settings as a governance subject (authors: the git authors of the files, for the record)."""
    files = [Path(marketing_dir) / name for name in SETTINGS_FILES]
    authors = sorted({a for f in files if f.is_file() for a in git_authors(f)}) if with_authors else []
    return Subject(SETTINGS_SUBJECT, "+".join(SETTINGS_FILES), settings_version(marketing_dir), tuple(authors))


def has_uncommitted_settings(marketing_dir: Path) -> bool:
    """In a git checkout: a settings file is new, edited or deleted against HEAD. Outside git: False."""
    return has_uncommitted_files(marketing_dir, SETTINGS_FILES)


def approve_settings(wh: Warehouse, governance: Governance, marketing_dir: Path, who: str, comment: str | None,
                     at: datetime) -> tuple[bool, Subject]:
    """Record `who`'s (a launcher's) approval of the current settings version and its audit row;
    False if they had already approved this version."""
    subject = settings_subject(marketing_dir)
    launcher = person_with(governance, who, "launcher", subject, SETTINGS_WHAT)
    return insert_approval(wh, subject, launcher, comment, at), subject


def settings_gate(wh: Warehouse, governance: Governance, marketing_dir: Path) -> Gate:
    """Whether dispatch may send with the settings on disk now, and why (the governance tables must exist)."""
    if not governance.required:
        return Gate(True, "not_required", f"settings approval not required ({governance.source or 'no roles.yaml'})")
    subject = settings_subject(marketing_dir, with_authors=False)
    rows = wh.fetch_rows("""select version, approver, approved_at from journey_approvals where journey_id = $sid
                            order by approved_at desc, approver""", {"sid": SETTINGS_SUBJECT})
    lapsed = []
    for version, approver, approved_at in rows:
        if version != subject.version:
            continue
        if governance.has_role(approver, "launcher", SETTINGS_SUBJECT, subject.path):
            return Gate(True, "approved", f"settings version {subject.version[:SHORT]} approved by {approver} "
                                          f"at {approved_at.isoformat()}")
        lapsed.append(f"{approver} no longer holds the launcher role")
    last = next((r for r in rows if r[0] != subject.version), None)
    before = (f"; last approved {last[0][:SHORT]} by {last[1]} at {last[2].isoformat()}, since edited"
              if last is not None else "")
    found = f" ({'; '.join(lapsed)})" if lapsed else ""
    launchers = ", ".join(governance.holders("launcher", SETTINGS_SUBJECT, subject.path)) or "nobody"
    return Gate(False, "not_approved",
                f"settings version {subject.version[:SHORT]} ({', '.join(SETTINGS_FILES)}) is not approved{found}"
                f"{before}: dispatch holds (sends nothing, planned messages wait) until a launcher ({launchers}) "
                f"runs `crmflow journeys approve-settings --as <launcher>`")
