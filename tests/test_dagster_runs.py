"""Runs go through the Dagster instance with a validated as-of (issue 16 items 1, 2, 5)."""

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from crmflow.errors import CrmflowUserError
from crmflow.warehouse import parse_target
from orchestration.asof import AS_OF_SOURCE_TAG, AS_OF_TAG, as_of_config, as_of_run_config

REPO = Path(__file__).resolve().parent.parent


def test_the_job_config_rejects_a_malformed_as_of_before_any_step(dbt_manifest):
    from orchestration.definitions import defs

    job = defs.resolve_job_def("journey_tick")
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.DagsterConfigMappingFunctionError) as raised:
            job.execute_in_process(run_config={"as_of": "yesterday"}, instance=instance)
        assert instance.get_runs() == []  # nothing was created, let alone started
    assert "run config as_of 'yesterday' is not a time" in str(raised.value.__cause__)


def test_the_config_mapping_passes_the_other_sections_on():
    mapped = as_of_config.resolve_from_unvalidated_config(
        {"as_of": "2026-11-22", "loggers": {"progress": {"config": {"notes": True}}}})
    assert mapped == {"loggers": {"progress": {"config": {"notes": True}}}}
    assert as_of_run_config(datetime(2026, 11, 22, 7, tzinfo=UTC)) == {"as_of": "2026-11-22T07:00:00+00:00"}


def test_cli_run_with_a_malformed_as_of_is_one_line_and_records_no_run(tmp_path, monkeypatch):
    from orchestration.cli import app

    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(tmp_path / "w.duckdb"))
    result = CliRunner().invoke(app, ["run", "--as-of", "yesterday"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--as-of 'yesterday' is not a time" in lines[0]
    assert not (tmp_path / "w.duckdb").exists()


def test_backfill_rejects_a_reversed_range_in_one_line():
    from orchestration.cli import app

    result = CliRunner().invoke(app, ["backfill", "--from", "2026-05-03", "--to", "2026-05-01"])
    assert result.exit_code == 2
    assert "--to 2026-05-01 is before --from 2026-05-03" in result.output


def test_backfill_days_are_the_daily_schedule_ticks():
    from orchestration.schedules import daily_tick

    assert daily_tick(date(2026, 5, 1), "Europe/Berlin").astimezone(UTC) == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    assert daily_tick(date(2026, 5, 1), "UTC").isoformat() == "2026-05-01T02:00:00+00:00"


def test_a_cli_run_beside_another_run_on_the_same_duckdb_file_is_one_line(tmp_path):
    from orchestration.runs import check_no_run_in_the_way, warehouse_tags

    target, other = parse_target(str(tmp_path / "w.duckdb")), parse_target(str(tmp_path / "other.duckdb"))
    with dg.instance_for_test() as instance:
        check_no_run_in_the_way(instance, target)  # nothing in progress
        run = instance.create_run_for_job(dg.GraphDefinition(name="g").to_job(name="crmflow_full"),
                                          tags={**warehouse_tags(target), AS_OF_TAG: "2026-11-22T02:00:00+00:00"})
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name="crmflow_full", message="started"))
        with pytest.raises(CrmflowUserError) as raised:
            check_no_run_in_the_way(instance, target)
        check_no_run_in_the_way(instance, other)  # another warehouse is not in the way
    message = str(raised.value)
    assert "\n" not in message and run.run_id[:8] in message and "as of 2026-11-22T02:00:00+00:00" in message
    assert "started" in message and "DuckDB has one writer" in message


def test_a_launch_without_an_as_of_uses_the_launch_time_and_shows_it():
    from orchestration.asof import as_of_from_context

    seen: list[datetime] = []

    @dg.asset
    def clock(context: dg.AssetExecutionContext) -> None:
        seen.append(as_of_from_context(context))

    with dg.instance_for_test() as instance:
        result = dg.materialize([clock], instance=instance)
        run = instance.get_run_by_id(result.run_id)
    assert run.tags[AS_OF_TAG] == seen[0].isoformat() and run.tags[AS_OF_SOURCE_TAG] == "launch_time"


def test_config_and_tag_that_disagree_are_refused():
    from orchestration.asof import as_of_from_context

    @dg.asset
    def clock(context: dg.AssetExecutionContext) -> None:
        as_of_from_context(context)

    job = dg.define_asset_job("j", selection=[clock], config=as_of_config)
    defs = dg.Definitions(assets=[clock], jobs=[job])
    result = defs.resolve_job_def("j").execute_in_process(
        run_config={"as_of": "2026-11-22"}, tags={AS_OF_TAG: "2026-11-21T00:00:00+00:00"}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "disagrees with run config as_of" in str(failure.event_specific_data.error.cause.message)


@pytest.mark.slow
def test_crmflow_run_is_recorded_in_the_instance_and_prints_few_lines(tmp_path):
    """A small world through the real CLI: the run is in DAGSTER_HOME with its as-of (config and tag),
    every asset of the job is materialised in the catalog, and the output is at most ~40 lines."""
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb"), "CRMFLOW_LANDING_DIR": str(tmp_path / "l"),
           "CRMFLOW_OUTBOX_DIR": str(tmp_path / "o"), "CRMFLOW_EXPORT_DIR": str(tmp_path / "e"),
           "DAGSTER_HOME": str(tmp_path / "dh")}
    env.pop("CRMFLOW_ROLES_FILE", None)  # the shipped roles.yaml (approval required), not conftest's approval-off
    crmflow = str(Path(sys.executable).parent / "crmflow")
    subprocess.run([crmflow, "generate", "--users", "30", "--days", "40", "--end", "2026-11-20"], env=env,
                   check=True, capture_output=True)
    result = subprocess.run([crmflow, "run", "--as-of", "2026-11-21"], env=env, capture_output=True, text=True,
                            timeout=1800)
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 0, "\n".join(output[-30:])
    assert len(output) <= 40, "\n".join(output)
    assert not [line for line in output if " of 2" in line and " START " in line]  # no dbt node lines
    # dbt's total is on its step's line; the journeys the gate stopped (none approved here) are one line
    assert not [line for line in output if line.strip().startswith("dbt: Done.")]
    assert [line for line in output if line.startswith("  ok   crmflow_dbt_assets ") and "dbt PASS=" in line]
    assert not [line for line in output if line.startswith("  warn journey_")]
    gated = [line for line in output if line.startswith("journeys that enrol nobody and send nothing: ")]
    assert len(gated) == 1, "\n".join(output)
    gated = gated[0]
    assert "not approved: abandoned_cart, " in gated and "`crmflow journeys approve <id> --as <person>`" in gated
    assert [line for line in output if line.startswith("  ok   journey_welcome_series ")
            and line.endswith("welcome_series: not approved: enrols nobody, sends nothing")]
    assert output[0].startswith("crmflow run as of 2026-11-21T00:00:00+00:00 (warehouse: applied migrations 1, ")
    assert [line for line in output if line.startswith("run ") and " succeeded in " in line]

    os.environ["DAGSTER_HOME"], home = env["DAGSTER_HOME"], os.environ["DAGSTER_HOME"]
    try:
        with dg.DagsterInstance.get() as instance:
            [run] = instance.get_runs()
            assert run.job_name == "crmflow_full" and run.status == dg.DagsterRunStatus.SUCCESS
            assert run.run_config["as_of"] == run.tags[AS_OF_TAG] == "2026-11-21T00:00:00+00:00"
            from orchestration.definitions import defs

            keys = defs.resolve_job_def("crmflow_full").asset_layer.selected_asset_keys
            missing = [k.to_user_string() for k in keys if instance.get_latest_materialization_event(k) is None]
            assert not missing
            # the multi-relation singular tests are asset checks on their model, not observations
            check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey("kpi_daily"), "assert_kpi_daily_revenue_reconciles")])
            assert check, "assert_kpi_daily_revenue_reconciles is not an asset check on kpi_daily"
    finally:
        os.environ["DAGSTER_HOME"] = home


def test_the_journeys_the_gate_stopped_are_one_line():
    from types import SimpleNamespace

    from orchestration.cli import gated_journeys, gated_journeys_line

    def check(journey, passed, state):
        evaluation = dg.AssetCheckEvaluation(asset_key=dg.AssetKey(f"journey_{journey}"), check_name="journey_approved",
                                             passed=passed, metadata={"state": dg.MetadataValue.text(state)})
        return SimpleNamespace(event_type_value="ASSET_CHECK_EVALUATION", event_specific_data=evaluation)

    events = [check("win_back", False, "not_approved"), check("vip", True, "approved"),
              check("abandoned_cart", False, "not_approved"), check("birthday", False, "disabled"),
              SimpleNamespace(event_type_value="STEP_SUCCESS", event_specific_data=None)]
    stopped = gated_journeys(events)
    assert stopped == {"not_approved": ["win_back", "abandoned_cart"], "disabled": ["birthday"]}
    assert gated_journeys_line(stopped) == (
        "journeys that enrol nobody and send nothing: disabled: birthday (`crmflow journeys enable <id> --as "
        "<person>`); not approved: abandoned_cart, win_back (`crmflow journeys approve <id> --as <person>`)")
