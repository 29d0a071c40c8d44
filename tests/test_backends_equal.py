"""Issue 14's proof: one generated world, `crmflow run` at two as-of times on DuckDB and on PostgreSQL,
then every table compared (tests/helpers_backends_equal.py: order-independent, floats to 1e-9,
timestamps as UTC instants, JSON by value).

The world (1,500 users, 120 days, seed 14) lands up to the first as-of's day; the week after it lands
before the second run, as a deployment would receive it. Each backend has its own outbox, exports and
model folder; the landing folder is shared (ingestion only reads it). The PostgreSQL database
`crmflow_eq_<random>` is created on 127.0.0.1:5432 and dropped afterwards; without a server the test
skips, except under CI=true, where it fails.

Columns that record the wall clock of the run (load times, durations) differ between any two runs,
on one engine too, and are left out of the comparison by name (WALL_CLOCK_COLUMNS).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers_backends_equal import compare_table
from helpers_postgres import fresh_database

from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.warehouse import Warehouse, open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.backends_equal]

CRMFLOW = str(Path(sys.executable).parent / "crmflow")
USERS, DAYS, SEED = 1500, 120, 14
T1 = datetime(2026, 11, 13, 6, tzinfo=UTC)
T2 = T1 + timedelta(days=7)
BACKENDS = ("duckdb", "postgres")
# Set from the wall clock by the run itself, so they differ between any two runs.
WALL_CLOCK_COLUMNS = frozenset({
    "loaded_at", "ingested_at", "applied_at", "started_at", "finished_at", "created_at", "trained_at",
    "duration_s", "duration_ms", "elapsed_s", "fit_seconds", "recorded_at", "written_at", "pushed_at",
})
# Bookkeeping, not results.
SKIPPED_TABLES = frozenset({"schema_migrations"})
FOLDER_COLUMNS = frozenset({"artifact_path"})  # each backend has its own model folder


def _run(env: dict[str, str], as_of: datetime, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CRMFLOW, "run", "--as-of", as_of.isoformat(), "--log-level", "WARNING"], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=1200)


def _environment(root: Path, warehouse: str, landing: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "CRMFLOW_WAREHOUSE": warehouse, "CRMFLOW_LANDING_DIR": str(landing),
            "CRMFLOW_OUTBOX_DIR": str(root / "outbox"), "CRMFLOW_EXPORT_DIR": str(root / "exports"),
            "CRMFLOW_MODEL_DIR": str(root / "models"), "CRMFLOW_TIMEZONE": "Europe/Berlin",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with fresh_database("crmflow_eq") as url:
        yield url


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, postgres_database: str) -> dict[str, object]:
    """Both backends after the runs as of T1 and T2: their targets and every run's outcome."""
    root = tmp_path_factory.mktemp("backends_equal")
    landing = root / "landing"
    targets = {"duckdb": str(root / "duckdb" / "warehouse.duckdb"), "postgres": postgres_database}
    envs = {name: _environment(root / name, targets[name], landing) for name in BACKENDS}
    world = {"users": USERS, "days": DAYS, "end": T2.date(), "seed": SEED, "dirty_fraction": 0.01}
    failures: list[str] = []
    for as_of, since in ((T1, None), (T2, T1.date() + timedelta(days=1))):
        generate_landing(GeneratorConfig(**world, emit_since=since, emit_until=as_of.date()), landing)
        for name in BACKENDS:
            done = _run(envs[name], as_of, root / name)
            if done.returncode != 0:
                failed = [line for line in done.stderr.splitlines() if line.startswith(("step failed", "crmflow:"))]
                failures.append(f"{name} run as of {as_of.isoformat()} exit {done.returncode}: "
                                + (" | ".join(failed) or done.stderr[-2000:]))
    return {"targets": targets, "failures": failures}


def _tables(warehouse: Warehouse) -> set[str]:
    schemas = ", ".join(f"'{s}'" for s in set(warehouse.schemas.values()))
    rows = warehouse.fetch_rows(
        f"select table_name from information_schema.tables where table_schema in ({schemas})")
    return {row[0] for row in rows} - SKIPPED_TABLES


def test_runs_succeed_on_both_backends(two_runs) -> None:
    assert not two_runs["failures"], "\n".join(two_runs["failures"])


def test_every_table_is_equal_on_duckdb_and_postgres(two_runs) -> None:
    targets = two_runs["targets"]
    with open_warehouse(targets["duckdb"], read_only=True) as duck, open_warehouse(targets["postgres"]) as pg:
        duck_tables, pg_tables = _tables(duck), _tables(pg)
        assert "send_ledger" in duck_tables and "customer_profile" in duck_tables  # the run built the graph
        diffs = [diff for table in sorted(duck_tables | pg_tables)
                 if (diff := compare_table(duck, pg, table, WALL_CLOCK_COLUMNS | FOLDER_COLUMNS)) is not None]
    equal = len(duck_tables | pg_tables) - len(diffs)
    assert not diffs, f"{len(diffs)} tables differ ({equal} equal):\n" + "\n".join(map(str, diffs))

