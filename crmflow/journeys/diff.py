"""The impact of a journey change before it ships: what changed, in words, and who it affects.

`describe_changes` compares two versions of a journey section by section (steps, audience, timing,
templates, the rest). `impact` runs both versions through the journey engine's own SQL at the last
run's as-of, in one transaction that is rolled back (nothing stays): each version ticks as a scratch
journey over the same window as the last real tick, so the counts are who would enter, who would be
held out and who would get which message under each version. Active enrolments at a step the new
version removes are the ones that would leave (exit `step_removed`, docs/journeys.md).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from crmflow.errors import CrmflowUserError
from crmflow.journeys.engine import JourneyTick, prepare_tick
from crmflow.journeys.loader import parse_journey_text
from crmflow.journeys.render import describe
from crmflow.journeys.schema import Journey
from crmflow.warehouse import Warehouse

TIMING_KEYS = ("start_date", "end_date", "reentry", "frequency_cap", "goal")
SAMPLE = 5


# -- the old version ------------------------------------------------------------------------------
def git_version_text(path: Path, ref: str) -> str | None:
    """The file's text at a git ref (None if the file did not exist there)."""
    path = Path(path).resolve()

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(path.parent), *args], capture_output=True, text=True,
                              timeout=20, check=False)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise CrmflowUserError(f"{path}: not in a git checkout, so there is no {ref!r} to diff against")
    if git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode != 0:
        raise CrmflowUserError(f"--against {ref!r}: no such git commit, branch or tag")
    shown = git("show", f"{ref}:{path.relative_to(Path(top.stdout.strip()).resolve()).as_posix()}")
    return shown.stdout if shown.returncode == 0 else None


def parse_version(text: str, path: Path, ref: str) -> Journey:
    loaded = parse_journey_text(text, Path(f"{path.name}@{ref}"))
    if loaded.journey is None:
        raise CrmflowUserError(f"{path.name} at {ref} does not parse: {loaded.errors[0]}")
    return loaded.journey


# -- the change in words --------------------------------------------------------------------------
def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True, exclude_none=True) if hasattr(value, "model_dump") else value


def _fields_changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    parts = [f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_changes(old: Journey | None, new: Journey) -> dict[str, list[str]]:
    """Sentences per area (steps, audience, timing, templates, other); empty lists: no change there."""
    out: dict[str, list[str]] = {"steps": [], "audience": [], "timing": [], "templates": [], "other": []}
    if old is None:
        out["other"].append(f"new journey: {len(new.steps)} steps, {len(new.templates)} templates")
        return out
    old_steps = {s.id: (i, _dump(s)) for i, s in enumerate(old.steps)}
    new_steps = {s.id: (i, _dump(s)) for i, s in enumerate(new.steps)}
    for sid, (i, step) in new_steps.items():
        if sid not in old_steps:
            out["steps"].append(f"step {sid} added at position {i + 1} ({step['type']})")
        elif old_steps[sid][1] != step:
            target = "timing" if step["type"] in ("wait", "wait_until") else "steps"
            out[target].append(f"step {sid} changed: {_fields_changed(old_steps[sid][1], step)}")
    for sid, (_i, step) in old_steps.items():
        if sid not in new_steps:
            out["steps"].append(f"step {sid} removed ({step['type']}); users waiting there exit with step_removed")
    if [s.id for s in old.steps if s.id in new_steps] != [s.id for s in new.steps if s.id in old_steps]:
        out["steps"].append(f"step order: {', '.join(s.id for s in new.steps)}")
    if old.audience != new.audience:
        out["audience"].append(f"audience: {_fields_changed(_dump(old.audience), _dump(new.audience))}")
    if old.holdout != new.holdout:
        was = f"{old.holdout.percent:g}%" if old.holdout else "none"
        now = f"{new.holdout.percent:g}%" if new.holdout else "none"
        out["audience"].append(f"holdout {was} -> {now}")
    if old.trigger != new.trigger:
        area = "timing" if old.trigger.type == new.trigger.type else "audience"
        out[area].append(f"trigger {old.trigger.type} ({describe(old.trigger)}) -> {new.trigger.type} "
                         f"({describe(new.trigger)})")
    for key in TIMING_KEYS:
        a, b = _dump(getattr(old, key)), _dump(getattr(new, key))
        if a != b:
            out["timing"].append(f"{key}: {_fields_changed(a, b) if isinstance(a, dict) and isinstance(b, dict) else f'{_short(a)} -> {_short(b)}'}")
    for name in sorted(set(old.templates) | set(new.templates)):
        a, b = old.templates.get(name), new.templates.get(name)
        if a is None:
            out["templates"].append(f"template {name} added ({b.channel}, locales {', '.join(b.locales)})")  # type: ignore[union-attr]
        elif b is None:
            out["templates"].append(f"template {name} removed")
        elif a != b:
            changed = sorted(loc for loc in set(a.locales) | set(b.locales) if a.locales.get(loc) != b.locales.get(loc))
            out["templates"].append(f"template {name} changed: locales {', '.join(changed) or '(settings)'}")
    for key in ("name", "description", "owner", "enabled", "priority", "exit"):
        a, b = _dump(getattr(old, key)), _dump(getattr(new, key))
        if a != b:
            out["other"].append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


# -- the impact -----------------------------------------------------------------------------------
@dataclass
class VersionRun:
    entered: set[str] = field(default_factory=set)
    holdout: set[str] = field(default_factory=set)
    messages: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # user -> {(step, template)}

    def by_message(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for planned in self.messages.values():
            for step, template in planned:
                counts[f"{step}/{template}"] = counts.get(f"{step}/{template}", 0) + 1
        return dict(sorted(counts.items()))


@dataclass
class Impact:
    as_of: datetime
    window_start: datetime | None
    old: VersionRun
    new: VersionRun
    leaving: dict[str, int]  # active enrolments per removed step (they exit with step_removed)

    def summary(self, sample: int = SAMPLE) -> dict[str, Any]:
        only_new = sorted(self.new.entered - self.old.entered)
        only_old = sorted(self.old.entered - self.new.entered)
        both = self.new.entered & self.old.entered
        changed = sorted(u for u in both if self.old.messages.get(u, set()) != self.new.messages.get(u, set()))
        return {
            "as_of": self.as_of.isoformat(),
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "entering": {"old": len(self.old.entered), "new": len(self.new.entered),
                         "only_new": len(only_new), "only_old": len(only_old)},
            "holdout": {"old": len(self.old.holdout), "new": len(self.new.holdout)},
            "messages": {"old": self.old.by_message(), "new": self.new.by_message()},
            "different_messages": len(changed),
            "leaving": dict(self.leaving),
            "sample": {"only_new": only_new[:sample], "only_old": only_old[:sample],
                       "different_messages": [{"user_id": u, "old": sorted(self.old.messages.get(u, set())),
                                               "new": sorted(self.new.messages.get(u, set()))}
                                              for u in changed[:sample]]},
        }


class _RollBack(Exception):
    """Ends the simulation transaction so that nothing of it stays."""


def _simulate(wh: Warehouse, journey: Journey, scratch_id: str, as_of: datetime, previous: datetime | None,
              timezone: str) -> VersionRun:
    scratch = journey.model_copy(update={"id": scratch_id})
    if previous is not None:  # the same window as the last real tick: (previous tick, as_of]
        wh.execute("""insert into journey_ticks (journey_id, as_of, config_hash, entered, holdout, exited, planned,
                          active) values ($jid, $prev, 'diff', 0, 0, 0, 0, 0)""", {"jid": scratch_id, "prev": previous})
    JourneyTick(wh, scratch, as_of, timezone).run()
    run = VersionRun()
    for user, holdout in wh.fetch_rows("select user_id, is_holdout from journey_enrolments where journey_id = $jid",
                                       {"jid": scratch_id}):
        run.entered.add(str(user))
        if holdout:
            run.holdout.add(str(user))
    for user, step, template in wh.fetch_rows("select user_id, step_id, template from send_ledger where journey_id = $jid",
                                              {"jid": scratch_id}):
        run.messages.setdefault(str(user), set()).add((str(step), str(template)))
    return run


def impact(con: Warehouse | Any, old: Journey | None, new: Journey, as_of: datetime | None = None,
           timezone: str = "UTC") -> Impact:
    """Both versions at the last run's as-of (or `as_of`), rolled back; needs the marts the journey reads."""
    wh = prepare_tick(con)  # migrations commit on their own, before the rolled-back simulation
    p = {"jid": new.id}
    if as_of is None:
        as_of = wh.scalar("select max(as_of) from journey_ticks where journey_id = $jid", p)
        if as_of is None:
            raise CrmflowUserError(f"journey {new.id} has not run yet: give --as-of to simulate both versions at a time")
    previous = wh.scalar("select max(as_of) from journey_ticks where journey_id = $jid and as_of < $as_of",
                         {**p, "as_of": as_of})
    kept = [s.id for s in new.steps]
    leaving = {str(step): int(n) for step, n in wh.fetch_rows(
        """select current_step, count(*) from journey_enrolments where journey_id = $jid and status = 'active'
           group by current_step order by current_step""", p) if step not in kept}
    result: dict[str, VersionRun] = {}
    try:
        with wh.transaction():
            result["old"] = (_simulate(wh, old, f"{new.id[:50]}__diff_old", as_of, previous, timezone)
                             if old is not None else VersionRun())
            result["new"] = _simulate(wh, new, f"{new.id[:50]}__diff_new", as_of, previous, timezone)
            raise _RollBack
    except _RollBack:
        pass
    start = previous if previous is not None else as_of - new.trigger.lookback
    return Impact(as_of, start, result["old"], result["new"], leaving)
