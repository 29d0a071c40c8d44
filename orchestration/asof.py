"""The run's as-of time. Every run carries it as a tag so that assets, dbt and journeys agree on
"now"; schedules set it to the scheduled tick, the CLI to --as-of, a manual UI run to its start."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from crmflow.settings import parse_as_of

AS_OF_TAG = "crmflow/as_of"


def as_of_from_context(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> datetime:
    run = context.run
    tag = run.tags.get(AS_OF_TAG)
    if tag:
        return parse_as_of(tag, f"run tag {AS_OF_TAG}")
    # A run launched without the tag (e.g. "Materialize" in the UI): use the run's creation time, so
    # every step of the run agrees on one moment.
    stats = context.instance.get_run_stats(run.run_id)
    started = stats.launch_time or stats.start_time
    if started:
        return datetime.fromtimestamp(started, tz=UTC).replace(microsecond=0)
    return parse_as_of(None)


def as_of_tags(as_of: datetime) -> dict[str, str]:
    return {AS_OF_TAG: as_of.astimezone(UTC).isoformat()}
