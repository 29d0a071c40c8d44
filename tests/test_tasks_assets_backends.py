"""The task assets through Dagster on DuckDB and on PostgreSQL, without `crmflow run`: as a run the
Dagster UI launches, the warehouse resource applies the migrations first (a fresh database has no
tables); then outcomes, task rules (the shipped marketing/ config), exports and asset checks give the
same tables and byte-identical export files on both engines."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from helpers_banners_tasks import AS_OF, normalised_rows
from helpers_postgres import fresh_database
from test_banners_tasks_backends import task_inputs

from assets.tasks import build_task_assets, task_outcomes
from crmflow.warehouse import open_warehouse
from crmflow.warehouse.migrations import MIGRATIONS, applied_versions
from orchestration.asof import as_of_tags
from orchestration.resources import CrmflowSettingsResource, WarehouseResource
from orchestration.resources_banners_tasks import ExportPushResource

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # four Dagster runs: about 40 s, 130 s on a loaded machine


@pytest.fixture()
def postgres_target():
    with fresh_database("crmflow_tasks_assets") as url:
        yield url


def materialise(target: str, root: Path, landing: Path, as_of) -> dg.ExecuteInProcessResult:
    resources = {
        "warehouse": WarehouseResource(path=target),
        "settings": CrmflowSettingsResource(landing_dir=str(landing), outbox_dir=str(root / "outbox"),
                                            export_dir=str(root / "exports"), marketing_dir=str(REPO / "marketing")),
        "tasks_push": ExportPushResource(url=None),
    }
    return dg.materialize([task_outcomes, *build_task_assets([])], resources=resources, tags=as_of_tags(as_of))


def run_twice(target: str, root: Path, landing: Path) -> dict:
    with open_warehouse(target) as wh:
        assert applied_versions(wh) == []  # nothing but the inputs dbt and intelligence would build
        for name, table in task_inputs().items():
            wh.write_arrow(table, name, mode="replace")
    first = materialise(target, root, landing, AS_OF)
    with open_warehouse(target) as wh:
        versions = applied_versions(wh)
        [task_id] = wh.fetch_rows("select min(task_id) from operator_tasks where status = 'open'")[0]
    (landing / "task_outcomes").mkdir(parents=True, exist_ok=True)
    (landing / "task_outcomes" / "day1.csv").write_text(
        f"task_id,outcome,handled_at,handling_seconds\n{task_id},converted,2026-11-22T07:00:00Z,300\n")
    second = materialise(target, root, landing, AS_OF + timedelta(hours=2))
    with open_warehouse(target) as wh:
        tables = {name: normalised_rows(wh, name) for name in
                  ("operator_tasks", "operator_task_rule_runs", "task_outcomes", "task_outcome_files")}
    results = (first, second)
    return {
        "success": [r.success for r in results],
        "checks": [sorted((c.check_name, c.passed) for c in r.get_asset_check_evaluations()) for r in results],
        "versions": versions, "tables": tables, "converted": task_id,
        "csv": (root / "exports" / "tasks" / "operator_tasks.csv").read_bytes(),
        "jsonl": (root / "exports" / "tasks" / "operator_tasks.jsonl").read_bytes(),
    }


def test_task_assets_migrate_and_match_on_duckdb_and_postgres(tmp_path: Path, postgres_target: str):
    landing = tmp_path / "landing"
    duck = run_twice(str(tmp_path / "duckdb" / "wh.duckdb"), tmp_path / "duckdb", landing)
    (landing / "task_outcomes" / "day1.csv").unlink()  # the PostgreSQL runs see the file arrive as well
    pg = run_twice(postgres_target, tmp_path / "postgres", landing)
    for key in duck:
        assert duck[key] == pg[key], key

    assert duck["success"] == [True, True]
    assert all(passed for checks in duck["checks"] for _, passed in checks) and len(duck["checks"][0]) == 3
    assert duck["versions"] == [m.version for m in MIGRATIONS]  # applied by the resource, not crmflow run
    tasks = {row[0]: row for row in duck["tables"]["operator_tasks"]}
    # the journey requests (the shipped rules recall nobody from these inputs); status follows the outcome
    assert len(tasks) >= 2 and tasks[duck["converted"]][12] == "converted"
    assert [row[2] for row in duck["tables"]["task_outcomes"]] == ["converted"]
    exported = duck["csv"].decode().splitlines()
    assert exported[0].startswith("task_id,operator_id") and len(exported) - 1 == sum(
        1 for row in tasks.values() if row[12] in ("open", "unassigned"))
