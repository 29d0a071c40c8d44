"""`crmflow run` on Apache Spark gives what it gives on DuckDB (issue 18 step 2; docs/scaling.md).

One small generated world (150 users, 60 days, seed 18, business time zone Europe/Berlin, journeys
without the approval gate as in bench/run_bench.py) goes through the same command twice, at the same
time: with CRMFLOW_WAREHOUSE=spark://local[2] and a DuckDB CRMFLOW_STATE, and on a DuckDB warehouse
alone. Compared (tests/helpers_backends_equal.py: order-independent, floats to 1e-9, timestamps as
UTC instants, JSON by value; wall-clock columns left out):

- the customer marts and KPIs, read from Spark (fetched into a scratch DuckDB file by
  crmflow.warehouse.spark.fetch) against the DuckDB warehouse's;
- the operational state the Python stages wrote into the store (journey enrolments, the send
  ledger, banner assignments, operator tasks) against the DuckDB warehouse's.

The history marts are not compared: on plain parquet they are tables of the current spells only
(docs/scaling.md, incremental models per target). Marker `spark` (make test-spark): needs
crmflow[spark] and Java 17, and several JVM starts (one per dbt step and per table sync).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from helpers_backends_equal import compare_table
from helpers_dbt_spark import require_spark
from test_backends_equal import WALL_CLOCK_COLUMNS

from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.settings import REPO_ROOT
from crmflow.warehouse import open_warehouse, parse_target
from crmflow.warehouse.spark import fetch

pytestmark = pytest.mark.spark

CRMFLOW = str(Path(sys.executable).parent / "crmflow")
CONFIG = GeneratorConfig(users=150, days=60, end=date(2026, 3, 31), seed=18)
AS_OF = datetime(2026, 4, 1, 6, tzinfo=UTC)
MARTS = ["customer_profile", "customer_rfm", "customer_lifecycle", "customer_value_tier", "customer_segments",
         "customer_tags", "kpi_daily", "kpi_churn", "kpi_funnel", "kpi_ltv", "kpi_cohort_retention"]
STATE = ["journey_enrolments", "send_ledger", "banner_assignments", "operator_tasks"]
MUST_HAVE_ROWS = ["customer_profile", "customer_segments", "journey_enrolments", "send_ledger", "operator_tasks"]
ENGINES = ("spark", "duckdb")


def _marketing(root: Path) -> Path:
    """The repository's marketing folder with roles.yaml `approval.required: false`, so journeys enrol."""
    target = root / "marketing"
    shutil.copytree(REPO_ROOT / "marketing", target)
    roles = yaml.safe_load((target / "roles.yaml").read_text()) or {}
    roles.setdefault("approval", {})["required"] = False
    (target / "roles.yaml").write_text(yaml.safe_dump(roles, sort_keys=False))
    return target


def _environment(root: Path, landing: Path, marketing: Path, engine: str) -> dict[str, str]:
    work = root / engine
    (work / "dagster_home").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMFLOW_", "PG"))}
    env.update({"CRMFLOW_LANDING_DIR": str(landing), "CRMFLOW_MARKETING_DIR": str(marketing),
                "DAGSTER_HOME": str(work / "dagster_home"), "CRMFLOW_OUTBOX_DIR": str(work / "outbox"),
                "CRMFLOW_EXPORT_DIR": str(work / "exports"), "CRMFLOW_MODEL_DIR": str(work / "models"),
                "CRMFLOW_TIMEZONE": "Europe/Berlin", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"})
    if engine == "spark":
        env.update({"CRMFLOW_WAREHOUSE": "spark://local[2]", "CRMFLOW_STATE": str(work / "state.duckdb"),
                    "CRMFLOW_SPARK_DIR": str(work / "spark"), "CRMFLOW_SPARK_SHUFFLE_PARTITIONS": "2"})
    else:
        env["CRMFLOW_WAREHOUSE"] = str(work / "warehouse.duckdb")
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_spark()
    root = tmp_path_factory.mktemp("run_spark")
    landing = root / "landing"
    generate_landing(CONFIG, landing)
    marketing = _marketing(root)
    envs = {engine: _environment(root, landing, marketing, engine) for engine in ENGINES}
    # Both at once (separate folders; the landing folder is only read).
    running = {engine: subprocess.Popen([CRMFLOW, "run", "--as-of", AS_OF.isoformat()], env=envs[engine],
                                        cwd=root / engine, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for engine in ENGINES}
    outcomes = {}
    for engine, process in running.items():
        try:
            out, err = process.communicate(timeout=3600)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        outcomes[engine] = (process.returncode, out, err)
    failures = [f"{engine} exit {code}: " + (" | ".join(line for line in err.splitlines()
                                                        if line.startswith(("step failed", "crmflow:"))) or err[-3000:])
                for engine, (code, _out, err) in outcomes.items() if code != 0]
    marts = root / "spark_marts.duckdb"
    if not failures:
        spark = parse_target("spark://local[2]", env={"CRMFLOW_SPARK_DIR": str(root / "spark" / "spark")})
        with open_warehouse(str(marts)) as scratch:
            fetch(scratch, MARTS, spark)
    return {"failures": failures, "outcomes": outcomes, "duckdb": str(root / "duckdb" / "warehouse.duckdb"),
            "state": str(root / "spark" / "state.duckdb"), "marts": str(marts)}


def test_crmflow_run_succeeds_on_spark_and_on_duckdb(runs: dict) -> None:
    assert not runs["failures"], "\n".join(runs["failures"])
    code, out, _err = runs["outcomes"]["spark"]
    assert "succeeded" in out.splitlines()[-1] or any(" succeeded in " in line for line in out.splitlines()), out


def _diffs(left: str, right: str, tables: list[str]) -> list[str]:
    with open_warehouse(left, read_only=True) as one, open_warehouse(right, read_only=True) as other:
        empty = [t for t in tables if t in MUST_HAVE_ROWS and one.table_exists(t)
                 and one.scalar(f"select count(*) from {t}") == 0]
        assert not empty, f"tables without rows (the world must exercise them): {empty}"
        return [str(diff) for table in tables
                if (diff := compare_table(one, other, table, WALL_CLOCK_COLUMNS)) is not None]


def test_the_customer_marts_and_kpis_on_spark_equal_duckdbs(runs: dict) -> None:
    assert not runs["failures"], "\n".join(runs["failures"])
    differing = _diffs(runs["duckdb"], runs["marts"], MARTS)
    assert not differing, "\n".join(differing)


def test_journeys_ledger_banners_and_tasks_in_the_store_equal_duckdbs(runs: dict) -> None:
    assert not runs["failures"], "\n".join(runs["failures"])
    differing = _diffs(runs["duckdb"], runs["state"], STATE)
    assert not differing, "\n".join(differing)
