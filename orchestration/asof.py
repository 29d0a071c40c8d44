"""The run's as-of time: validated run config (`as_of`) on the crmflow jobs, also shown as the tag
`crmflow/as_of`, so that assets, dbt and journeys agree on "now".

Schedules set it to the scheduled tick, the CLI to --as-of (`crmflow backfill`: each day's tick),
a UI launch to what the launchpad says; a launch without it uses the run's launch time and writes
that back to the run as the tag, so every run shows the moment it computed. A malformed value is
rejected by the job's config mapping when the run is created, before any step starts
(docs/architecture.md "Time").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from crmflow.errors import CrmflowUserError
from crmflow.settings import parse_as_of

AS_OF_TAG = "crmflow/as_of"
# Where the as-of came from: config (CLI, schedule, backfill, a UI launch that set it) or launch_time.
AS_OF_SOURCE_TAG = "crmflow/as_of_source"
AS_OF_FIELD = "as_of"
AS_OF_HELP = ("The run's as-of time, ISO-8601 (2026-11-22, 2026-11-22T06:00:00Z or 2026-11-22T07:00:00+01:00; "
              "no zone = UTC). Empty: the run's launch time, shown on the run as tag crmflow/as_of.")


def as_of_run_config(as_of: datetime) -> dict[str, str]:
    return {AS_OF_FIELD: as_of.astimezone(UTC).isoformat()}


def as_of_tags(as_of: datetime) -> dict[str, str]:
    return {AS_OF_TAG: as_of.astimezone(UTC).isoformat(), AS_OF_SOURCE_TAG: "config"}


def _map_as_of_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config mapping of the crmflow jobs: check `as_of` (one line if malformed), pass the rest on."""
    value = config.get(AS_OF_FIELD) or ""
    if value:
        parse_as_of(value, "run config as_of")
    return {key: section for key, section in config.items() if key != AS_OF_FIELD and section is not None}


# The run config of the crmflow jobs: `as_of` on top, the usual sections passed through unchanged
# (Dagster validates them against the job's own schema after the mapping).
as_of_config = dg.ConfigMapping(
    config_fn=_map_as_of_config,
    config_schema={
        AS_OF_FIELD: dg.Field(str, is_required=False, default_value="", description=AS_OF_HELP),
        **{section: dg.Field(dg.Permissive(), is_required=False)
           for section in ("ops", "resources", "loggers", "execution")},
    },
    receive_processed_config_values=True,
)


def as_of_from_context(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> datetime:
    run = context.run
    configured = (run.run_config or {}).get(AS_OF_FIELD) or ""
    tag = run.tags.get(AS_OF_TAG)
    if configured:
        as_of = parse_as_of(configured, "run config as_of")
        if tag and parse_as_of(tag, f"run tag {AS_OF_TAG}") != as_of:
            raise CrmflowUserError(f"run tag {AS_OF_TAG}={tag!r} disagrees with run config as_of={configured!r}: "
                                   "set one of them")
        return as_of
    if tag:
        return parse_as_of(tag, f"run tag {AS_OF_TAG}")
    # A launch without an as-of (e.g. "Materialize" in the UI): the run's launch time, so every step
    # agrees on one moment; written back as the tag so the run shows it.
    stats = context.instance.get_run_stats(run.run_id)
    started = stats.launch_time or stats.start_time
    as_of = (datetime.fromtimestamp(started, tz=UTC).replace(microsecond=0) if started else parse_as_of(None))
    context.instance.add_run_tags(run.run_id, {AS_OF_TAG: as_of.isoformat(), AS_OF_SOURCE_TAG: "launch_time"})
    context.log.info(f"as of {as_of.isoformat()} (no as_of in the run config: the run's launch time)")
    return as_of
