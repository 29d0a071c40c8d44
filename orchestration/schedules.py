"""Jobs, schedules and sensors, declared next to each other."""

from __future__ import annotations

import hashlib
import os
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from crmflow.settings import load_settings
from orchestration.asof import as_of_config, as_of_run_config, as_of_tags
from orchestration.runs import warehouse_tags

full_pipeline_job = dg.define_asset_job(
    name="crmflow_full",
    selection=dg.AssetSelection.all(),
    description="The whole graph once, as of the run's as-of time (run config as_of, shown as tag crmflow/as_of).",
    config=as_of_config,
    # the warehouse it writes: a CLI run waits for no other run on the same DuckDB file (runs.py)
    tags=warehouse_tags(load_settings().warehouse),
    executor_def=dg.in_process_executor,
)


# The daily run starts at 02:00 in the business time zone, as of that moment.
DAILY_TICK = time(2, 0)


def daily_tick(day: date, timezone: str) -> datetime:
    """The daily schedule's tick on `day` (what `crmflow backfill` runs each day as of)."""
    return datetime.combine(day, DAILY_TICK, tzinfo=ZoneInfo(timezone))


@dg.schedule(
    job=full_pipeline_job,
    cron_schedule=f"{DAILY_TICK.minute} {DAILY_TICK.hour} * * *",
    execution_timezone=os.environ.get("CRMFLOW_TIMEZONE", "UTC"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Daily full run; the as-of time is the scheduled tick, so a late start changes nothing."""
    as_of = context.scheduled_execution_time
    return dg.RunRequest(run_key=as_of.isoformat(), run_config=as_of_run_config(as_of), tags=as_of_tags(as_of))


def landing_fingerprint(landing_dir: Path) -> tuple[str, int]:
    """A cheap fingerprint of the landing folder (names, sizes, mtimes) and its file count."""
    digest = hashlib.sha256()
    count = 0
    if landing_dir.exists():
        for path in sorted(p for p in landing_dir.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(landing_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            count += 1
    return digest.hexdigest(), count


@dg.sensor(job=full_pipeline_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_files_sensor(context: dg.SensorEvaluationContext):
    """Starts a run when files in the landing folder change (new or re-delivered files)."""
    fingerprint, count = landing_fingerprint(load_settings().landing_dir)
    if count == 0 or fingerprint == context.cursor:
        return dg.SkipReason("no new landing files")
    context.update_cursor(fingerprint)
    return dg.RunRequest(run_key=fingerprint)
