"""Per-stage wall time from a Dagster run's event log.

A step's wall time is STEP_SUCCESS (or STEP_FAILURE) minus STEP_START. A step is charged to the
asset group of the assets it materialised; the dbt step materialises several groups (staging,
intermediate, marts), so its time is split by dbt's own per-model execution durations and the rest
(dbt start-up, parsing, tests) is reported as "dbt (overhead)".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg


@dataclass
class StepTiming:
    step_key: str
    seconds: float
    status: str  # success | failure | incomplete
    groups: dict[str, float] = field(default_factory=dict)  # group -> dbt execution seconds
    started_at: float = 0.0  # event-log timestamps (time.time()), for the resource sampler's windows
    ended_at: float = 0.0
    stage: str = "other"  # the pipeline stage the report rows use (stage_of)


@dataclass
class RunTiming:
    steps: list[StepTiming]
    by_group: dict[str, float]
    wall_seconds: float
    failed_steps: list[str]


def step_timings(
    records: Iterable[dg.EventLogEntry], group_of: Callable[[dg.AssetKey], str | None],
) -> RunTiming:
    starts: dict[str, float] = {}
    ends: dict[str, tuple[float, str]] = {}
    step_groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    first = last = None
    for record in records:
        event = record.dagster_event
        first = record.timestamp if first is None else min(first, record.timestamp)
        last = record.timestamp if last is None else max(last, record.timestamp)
        if event is None or event.step_key is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            starts[event.step_key] = record.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            ends[event.step_key] = (record.timestamp, "success" if kind == "STEP_SUCCESS" else "failure")
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            group = group_of(materialization.asset_key) or "ungrouped"
            duration = materialization.metadata.get("Execution Duration")
            seconds = float(duration.value) if duration is not None else 0.0
            step_groups[event.step_key][group] += seconds
    steps: list[StepTiming] = []
    by_group: dict[str, float] = defaultdict(float)
    for key, started in sorted(starts.items(), key=lambda kv: kv[1]):
        ended, status = ends.get(key, (last or started, "incomplete"))
        wall = max(ended - started, 0.0)
        groups = dict(step_groups.get(key, {}))
        names = set(groups) or {group_of(dg.AssetKey(key))} - {None}
        steps.append(StepTiming(key, wall, status, groups, started, started + wall, stage_of(names)))
        _charge(by_group, wall, groups)
    failed = [s.step_key for s in steps if s.status != "success"]
    return RunTiming(steps, dict(by_group), (last - first) if first is not None else 0.0, failed)


# Asset groups built by the dbt step(s); everything else is its own stage (ingest, intelligence, ...).
DBT_GROUPS = frozenset({"dbt_seeds", "staging", "intermediate", "marts"})
STAGE_OF_GROUP = {"measurement": "report"}  # attribution tables + the HTML report


def stage_of(groups: set[str]) -> str:
    """The report's stage of a step: dbt for dbt groups, else its (single) asset group."""
    if not groups:
        return "other"
    if groups & DBT_GROUPS:
        return "dbt"
    group = sorted(groups)[0]
    return STAGE_OF_GROUP.get(group, group)


def _charge(by_group: dict[str, float], wall: float, groups: dict[str, float]) -> None:
    if not groups:
        by_group["other"] += wall
    elif len(groups) == 1:
        by_group[next(iter(groups))] += wall
    else:
        # A multi-group step (dbt): each group gets its own execution time, the rest is overhead.
        measured = sum(groups.values())
        for group, seconds in groups.items():
            by_group[group] += seconds
        by_group["dbt (overhead)"] += max(wall - measured, 0.0)
