"""The journey tick: journey assets + dispatch, hourly, as of the scheduled time."""

import os

import dagster as dg

from crmflow.settings import load_settings
from orchestration.asof import as_of_config, as_of_run_config, as_of_tags
from orchestration.runs import warehouse_tags

journey_tick_job = dg.define_asset_job(
    name="journey_tick",
    # delivery_events first: unsubscribes and bounces that arrived since the last tick must be in the
    # suppression list before this tick dispatches.
    selection=dg.AssetSelection.groups("journeys") | dg.AssetSelection.assets("delivery_events"),
    description="One journey tick against the latest marts: delivery events, every journey, then dispatch.",
    config=as_of_config,
    tags=warehouse_tags(load_settings().warehouse),
    executor_def=dg.in_process_executor,
)


@dg.schedule(
    job=journey_tick_job,
    cron_schedule=os.environ.get("CRMFLOW_JOURNEY_TICK_CRON", "0 * * * *"),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def journey_tick_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Hourly; as-of = the scheduled time, so waits are measured the same however late a run starts."""
    as_of = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"journey_tick:{as_of.isoformat()}", run_config=as_of_run_config(as_of),
                         tags=as_of_tags(as_of))
