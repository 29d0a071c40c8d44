"""Going back in time over cumulative state is refused before any step (docs/architecture.md
"Lineage and state"): the clock is the latest as-of recorded by the journey ticks, task rule runs,
banner changes and the dbt histories; the same as-of again or a later one passes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crmflow.cumulative_state import latest_state_as_of, refuse_going_back
from crmflow.errors import CrmflowUserError
from crmflow.warehouse import apply_migrations, open_warehouse

CRMFLOW = str(Path(sys.executable).parent / "crmflow")
T1 = datetime(2026, 6, 5, 6, tzinfo=UTC)
T2 = datetime(2026, 6, 20, 6, tzinfo=UTC)


def _tick(wh, as_of: datetime) -> None:
    wh.execute("insert into journey_ticks (journey_id, as_of, config_hash, entered, holdout, exited, planned, "
               "active) values ('welcome', $as_of, 'h', 0, 0, 0, 0, 0)", {"as_of": as_of})


def test_the_clock_is_the_latest_as_of_of_any_cumulative_state(tmp_path: Path) -> None:
    with open_warehouse(tmp_path / "w.duckdb") as wh:
        apply_migrations(wh)
        assert latest_state_as_of(wh) is None  # a fresh warehouse: anything goes
        refuse_going_back(wh, T1)
        _tick(wh, T1)
        wh.execute("insert into operator_task_rule_runs (rule, ran_at, recalled, created, assigned) "
                   "values ('r', $at, 0, 0, 0)", {"at": T2})
        assert latest_state_as_of(wh) == (T2, "operator tasks")
        refuse_going_back(wh, T2)  # the same as-of again
        refuse_going_back(wh, datetime(2026, 6, 21, tzinfo=UTC))
        with pytest.raises(CrmflowUserError, match="before 2026-06-20T06:00:00"):
            refuse_going_back(wh, T1)


def test_crmflow_run_refuses_an_earlier_as_of_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "CRMFLOW_LANDING_DIR": str(tmp_path / "landing"), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir()
    with open_warehouse(tmp_path / "warehouse.duckdb") as wh:
        apply_migrations(wh)
        _tick(wh, T2)
    done = subprocess.run([CRMFLOW, "run", "--as-of", T1.isoformat()], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "journey state" in errors[0] and "--analytics-only" in errors[0], done.stderr
    assert "crmflow run as of" not in done.stdout  # refused before the run started
