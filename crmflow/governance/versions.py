"""A journey version and who wrote it.

The version is the SHA-256 of the journey file's bytes followed by its template files' bytes (today
every template is inline in the journey file, so the file alone; a template file added later joins
the hash here). Any edit, even a comment, is a new version that needs its own approval.

The authors of a version: the journey's `owner:`, the author of the last git commit that touched the
file, and, when the file differs from that commit (an uncommitted edit), the checkout's git
user.email. Outside a git checkout (a deployed copy) only the owner is known.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

SHORT = 12  # hex characters shown for a version


def journey_version(path: Path, template_files: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256(Path(path).read_bytes())
    for template in template_files:
        digest.update(b"\0" + Path(template).read_bytes())
    return digest.hexdigest()


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def has_uncommitted_change(path: Path) -> bool:
    """In a git checkout: the file is untracked or differs from HEAD. Outside git: False."""
    path = Path(path).resolve()
    if _git(path, "rev-parse", "--git-dir") is None:
        return False
    tracked = _git(path, "ls-files", "--error-unmatch", "--", path.name) is not None
    return not tracked or _git(path, "diff", "--quiet", "HEAD", "--", path.name) is None


def has_uncommitted_files(folder: Path, names: Iterable[str]) -> bool:
    """In a git checkout: any of these files in `folder` is new, edited or deleted against HEAD. Outside git: False."""
    folder = Path(folder).resolve()
    return bool(_git(folder / "_", "status", "--porcelain", "--", *names))


def git_authors(path: Path) -> list[str]:
    """Emails (lower case) of who changed the file last: the last commit's author, plus the local
    git user when the working file differs from that commit. Empty outside git."""
    path = Path(path).resolve()
    last = _git(path, "log", "-1", "--format=%ae", "--", path.name)
    authors = [last.lower()] if last else []
    if has_uncommitted_change(path):
        local = _git(path, "config", "user.email")
        if local:
            authors.append(local.lower())
    return sorted(set(authors))


def version_authors(path: Path, owner: str | None) -> list[str]:
    found = set(git_authors(path))
    if owner:
        found.add(owner.strip().lower())
    return sorted(found)
