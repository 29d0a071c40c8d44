"""A Spark warehouse that cannot run says so in one line before any step (issue 18): no CRMFLOW_STATE,
a bad spark:// URL, a bad or Spark CRMFLOW_STATE, no `java` on PATH, a Thrift server (not yet
supported by crmflow's table sync). `crmflow run` as a subprocess, as a user would start it; none of
these cases starts a JVM or needs pyspark (the java check comes first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crmflow.errors import CrmflowUserError
from crmflow.settings import load_settings
from crmflow.warehouse import WarehouseConfigError, open_warehouse, parse_target
from crmflow.warehouse.spark import check_spark_ready

CRMFLOW = str(Path(sys.executable).parent / "crmflow")


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != "CRMFLOW_STATE"}
    full = {**inherited, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "CRMFLOW_LANDING_DIR": str(tmp_path), **env}
    return subprocess.run([CRMFLOW, "run", "--as-of", "2026-04-01T06:00:00Z"], env=full, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(("env", "expected"), [
    ({"CRMFLOW_WAREHOUSE": "spark://local[2]"}, "needs CRMFLOW_STATE"),
    ({"CRMFLOW_WAREHOUSE": "spark://local[two]", "CRMFLOW_STATE": "{tmp}/state.duckdb"}, "not a Spark warehouse"),
    ({"CRMFLOW_WAREHOUSE": "spark://local[2]", "CRMFLOW_STATE": "mysql://u:secret@h/db"},
     "CRMFLOW_STATE='mysql://u:***@h/db': unsupported scheme"),
    ({"CRMFLOW_WAREHOUSE": "spark://local[2]", "CRMFLOW_STATE": "spark://local[1]"}, "no transactions"),
    ({"CRMFLOW_WAREHOUSE": "spark://local[2]", "CRMFLOW_STATE": "{tmp}/state.duckdb",
      "PATH": str(Path(sys.executable).parent)}, "no `java` on PATH; Spark needs Java 17"),
    ({"CRMFLOW_WAREHOUSE": "spark://thrift.example:10001", "CRMFLOW_STATE": "{tmp}/state.duckdb"},
     "cannot yet move tables to a Spark Thrift server"),
    ({"CRMFLOW_WAREHOUSE": "{tmp}/w.duckdb", "CRMFLOW_STATE": "{tmp}/state.duckdb"}, "unset CRMFLOW_STATE"),
])
def test_a_spark_warehouse_that_cannot_run_is_one_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = _run(tmp_path, **{k: v.replace("{tmp}", str(tmp_path)) for k, v in env.items()})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crmflow: error: ") and expected in lines[0], result.stderr
    assert "secret" not in result.stderr
    assert not (tmp_path / "state.duckdb").exists()  # nothing ran: no store opened
    assert result.stdout == ""


def test_settings_with_a_spark_warehouse(tmp_path: Path) -> None:
    settings = load_settings({"CRMFLOW_WAREHOUSE": "spark://local[2]", "CRMFLOW_STATE": str(tmp_path / "s.duckdb"),
                              "CRMFLOW_SPARK_DIR": str(tmp_path / "spark")})
    assert settings.warehouse == parse_target(str(tmp_path / "s.duckdb"), env={})  # what Python opens
    assert settings.spark is not None and settings.dbt_target == settings.spark
    assert settings.spark.path == tmp_path / "spark"
    plain = load_settings({"CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert plain.spark is None and plain.dbt_target == plain.warehouse
    with pytest.raises(CrmflowUserError, match="needs CRMFLOW_STATE"):
        load_settings({"CRMFLOW_WAREHOUSE": "spark://local[2]"})


def test_no_java_and_spark_is_not_a_store(tmp_path: Path) -> None:
    target = parse_target("spark://local[2]", env={})
    with pytest.raises(WarehouseConfigError, match="no `java` on PATH"):
        check_spark_ready(target, path=str(tmp_path))
    with pytest.raises(WarehouseConfigError, match="CRMFLOW_STATE"), open_warehouse(target):
        pass


def test_a_run_on_the_same_spark_folder_is_in_the_way_whatever_the_store(tmp_path: Path) -> None:
    import dagster as dg

    from orchestration.asof import AS_OF_TAG
    from orchestration.runs import check_no_run_in_the_way, warehouse_tags

    spark = parse_target("spark://local[2]", env={"CRMFLOW_SPARK_DIR": str(tmp_path / "spark")})
    other_spark = parse_target("spark://local[2]", env={"CRMFLOW_SPARK_DIR": str(tmp_path / "other")})
    store = parse_target("postgresql://crm@db:5432/one", env={})
    with dg.instance_for_test() as instance:
        check_no_run_in_the_way(instance, store, spark)  # nothing in progress
        run = instance.create_run_for_job(dg.GraphDefinition(name="g").to_job(name="crmflow_full"),
                                          tags={**warehouse_tags(store, spark), AS_OF_TAG: "2026-04-01T06:00:00+00:00"})
        instance.handle_run_event(run.run_id, dg.DagsterEvent(
            event_type_value="PIPELINE_START", job_name="crmflow_full", message="started"))
        with pytest.raises(CrmflowUserError, match="Spark's metastore admits one session") as raised:
            check_no_run_in_the_way(instance, parse_target("postgresql://crm@db:5432/two", env={}), spark)
        check_no_run_in_the_way(instance, store, other_spark)  # another Spark folder, a server store
    assert "\n" not in str(raised.value) and run.run_id[:8] in str(raised.value)
