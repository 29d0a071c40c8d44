"""The Dagster definitions load, validate and wire the schedule and the landing sensor correctly."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.asof import AS_OF_TAG


def test_definitions_load(dbt_manifest):
    from orchestration.definitions import defs

    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"raw_events", "raw_registrations", "raw_orders"} <= keys
    job = defs.resolve_job_def("crmflow_full")
    assert job.executor_def.name == "in_process"
    assert defs.resolve_schedule_def("daily_schedule")
    assert defs.resolve_sensor_def("landing_files_sensor")


def test_dg_check_defs(dbt_manifest):
    """`dg check defs` ([tool.dg] in pyproject.toml) loads the one code location, without warnings."""
    dg_cli = str(Path(sys.executable).parent / "dg")
    result = subprocess.run([dg_cli, "check", "defs"], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr
    assert "SupersessionWarning" not in result.stdout + result.stderr


def test_daily_schedule_tags_the_run_with_its_tick(dbt_manifest):
    from orchestration.definitions import defs

    schedule = defs.resolve_schedule_def("daily_schedule")
    tick = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags[AS_OF_TAG] == "2026-05-01T02:00:00+00:00"


def test_landing_sensor_fires_once_per_change(tmp_path, monkeypatch, dbt_manifest):
    from orchestration.schedules import landing_files_sensor

    monkeypatch.setenv("CRMFLOW_LANDING_DIR", str(tmp_path))
    with dg.instance_for_test() as instance:
        first = landing_files_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.SkipReason)

        (tmp_path / "orders").mkdir()
        (tmp_path / "orders" / "o1.csv").write_text("order_id\n")
        context = dg.build_sensor_context(instance=instance)
        request = landing_files_sensor(context)
        assert isinstance(request, dg.RunRequest)
        again = landing_files_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert isinstance(again, dg.SkipReason)


def test_journey_tick_loads_delivery_events_before_dispatch(dbt_manifest):
    from orchestration.definitions import defs

    job = defs.resolve_job_def("journey_tick")
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert {"delivery_events", "journey_dispatch"} <= keys
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("delivery_events") in graph.get(dg.AssetKey("journey_dispatch")).parent_keys
