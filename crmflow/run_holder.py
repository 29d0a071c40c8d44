"""Who holds an embedded DuckDB warehouse right now, for readers that cannot open it.

A DuckDB file takes one writing process at a time, and while it holds the file no other process can
open it, not even read-only. The holder (`crmflow run`, `crmflow dispatch`) writes
`<warehouse>.holder` (command, pid, since) for the time it runs; a reader that finds the file locked
says plainly who holds it and since when (`held_message`), instead of a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


def holder_path(warehouse: Path | str) -> Path:
    return Path(str(warehouse) + ".holder")


@contextmanager
def holding(warehouse: Path | str | None, command: str, now: datetime | None = None) -> Iterator[None]:
    """Write the holder file for the block (no-op without a DuckDB path)."""
    if warehouse is None:
        yield
        return
    path = holder_path(warehouse)
    since = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": command, "pid": os.getpid(), "since": since}), encoding="utf-8")
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def is_lock_conflict(error: BaseException) -> bool:
    text = str(error)
    return "Could not set lock on file" in text or "Conflicting lock is held" in text


def held_message(warehouse: Path | str, doing: str) -> str:
    """One line: which process holds the warehouse and since when (from its holder file, if any)."""
    try:
        holder = json.loads(holder_path(warehouse).read_text(encoding="utf-8"))
        who = f"`{holder['command']}` (pid {holder['pid']}) since {holder['since']}"
    except (OSError, ValueError, KeyError):
        who = "another process"
    return (f"the warehouse {warehouse} is held by {who}; an embedded DuckDB file admits one process at a "
            f"time, so {doing} has to wait until it finishes (or use PostgreSQL, where readers never wait)")
