"""CI proof of the deploy kit (issue 16): with deploy/dagster.yaml pointed at PostgreSQL on 127.0.0.1
(a fresh database), a tick of the daily schedule queues the full job and the real `dagster-daemon run`
starts it from the queue and runs it to success. Slow (a full run on a small world): marked slow."""

import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import dagster._daemon.daemon  # noqa: F401  (before dagster._scheduler: their imports are circular)
import pytest
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._scheduler.scheduler import launch_scheduled_runs
from helpers_postgres import fresh_database

from orchestration.asof import AS_OF_TAG

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICK = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)


@pytest.mark.slow
def test_the_daemon_runs_a_schedule_tick_of_the_full_job_with_the_instance_on_postgresql(tmp_path, monkeypatch,
                                                                                      dbt_manifest):
    env = {"CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb"), "CRMFLOW_LANDING_DIR": str(tmp_path / "landing"),
           "CRMFLOW_OUTBOX_DIR": str(tmp_path / "outbox"), "CRMFLOW_EXPORT_DIR": str(tmp_path / "exports"),
           "CRMFLOW_TIMEZONE": "UTC", "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "DAGSTER_MAX_CONCURRENT_RUNS": "1"}
    subprocess.run([str(BIN / "crmflow"), "generate", "--users", "25", "--days", "40", "--end", "2026-11-20"],
                   env={**os.environ, **env}, check=True, capture_output=True)
    (tmp_path / "dagster_home").mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_module:\n      module_name: orchestration.definitions\n"
                         f"      location_name: crmflow\n      working_directory: {REPO}\n")

    with fresh_database("crmflow_dagster") as url:
        parts = urlparse(url)
        env.update(DAGSTER_PG_HOST=parts.hostname, DAGSTER_PG_PORT=str(parts.port), DAGSTER_PG_USER=parts.username,
                   DAGSTER_PG_PASSWORD=os.environ.get("PGPASSWORD", ""), DAGSTER_PG_DB=parts.path.lstrip("/"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            with WorkspaceProcessContext(instance, WorkspaceFileTarget([str(workspace)])) as context:
                location = context.create_request_context().get_code_location("crmflow")
                schedule = location.get_repository("__repository__").get_schedule("daily_schedule")
                # The schedule is on since just before the tick; the scheduler evaluates up to just after it.
                instance.add_instigator_state(InstigatorState(
                    schedule.get_remote_origin(), InstigatorType.SCHEDULE, InstigatorStatus.RUNNING,
                    ScheduleInstigatorData(schedule.cron_schedule, start_timestamp=(TICK - timedelta(hours=1)).timestamp())))
                list(launch_scheduled_runs(context, logging.getLogger("test"), TICK + timedelta(minutes=1), {}))
                instance.stop_schedule(schedule.get_remote_origin_id(), schedule.selector_id, schedule)
            [queued] = instance.get_runs()
            assert queued.job_name == "crmflow_full" and queued.status == dg.DagsterRunStatus.QUEUED
            assert queued.tags[AS_OF_TAG] == queued.run_config["as_of"] == TICK.isoformat()

            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                                      env={**os.environ, **env}, cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=open(tmp_path / "daemon.log", "w"))
            try:
                deadline = time.monotonic() + 2400
                while time.monotonic() < deadline:
                    run = instance.get_run_by_id(queued.run_id)
                    if run.is_finished:
                        break
                    time.sleep(5)
            finally:
                daemon.terminate()
                daemon.wait(timeout=60)
            assert run.status == dg.DagsterRunStatus.SUCCESS, (tmp_path / "daemon.log").read_text()[-3000:]
            assert instance.get_latest_materialization_event(dg.AssetKey("journey_dispatch")) is not None
