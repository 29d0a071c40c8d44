"""Issue 14's proof: one generated world, `crmflow run` at two as-of times on DuckDB and on PostgreSQL,
then every table compared (tests/helpers_backends_equal.py: order-independent, floats to 1e-9,
timestamps as UTC instants, JSON by value).

The world (1,500 users, 120 days, seed 14) lands up to the first as-of's day; the week after it lands
before the second run, as a deployment would receive it. Both backends run at the same time. Each backend has its own outbox, exports and
model folder; the landing folder is shared (ingestion only reads it). The PostgreSQL database
`crmflow_eq_<random>` is created on 127.0.0.1:5432 and dropped afterwards; without a server the test
skips, except under CI=true, where it fails. After the runs `crmflow report` reads each warehouse
and must print the same counts. CI runs this module (`make test-backends` in .ci/run, after `make test`).

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


def _both(command: list[str], envs: dict[str, dict[str, str]], root: Path) -> dict[str, tuple[int, str, str]]:
    """`command` on both backends at once (separate warehouses and folders; the landing folder is only
    read): (exit code, stdout, stderr) per backend."""
    running = {name: subprocess.Popen([CRMFLOW, *command], env=envs[name], cwd=root / name, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in BACKENDS}
    done = {}
    for name, process in running.items():
        try:
            out, err = process.communicate(timeout=2400)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        done[name] = (process.returncode, out, err)
    return done


def _environment(root: Path, warehouse: str, landing: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    # A Dagster instance per backend: two first runs at once on one fresh SQLite instance both stamp
    # its schema version (alembic), and every later run there fails with "more than one head".
    (root / "dagster_home").mkdir(exist_ok=True)
    return {**os.environ, "CRMFLOW_WAREHOUSE": warehouse, "CRMFLOW_LANDING_DIR": str(landing),
            "DAGSTER_HOME": str(root / "dagster_home"),
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
        runs = _both(["run", "--as-of", as_of.isoformat(), "--log-level", "WARNING"], envs, root)
        for name, (code, _, err) in runs.items():
            if code != 0:
                failed = [line for line in err.splitlines() if line.startswith(("step failed", "crmflow:"))]
                failures.append(f"{name} run as of {as_of.isoformat()} exit {code}: "
                                + (" | ".join(failed) or err[-2000:]))
    # the report reads (and rebuilds the measurement of) either warehouse
    reports = {}
    for name, (code, out, err) in _both(["report", "--as-of", T2.isoformat(), "--out", "report.html"],
                                        envs, root).items():
        if code != 0:
            failures.append(f"{name} report exit {code}: {err[-2000:]}")
        reports[name] = out.splitlines()[1:-1]  # the counts; not the first (target) and last (time) lines
    # nothing named after the URL (a dispatch lock or model folder derived from a postgresql:// "path")
    strays = [str(p) for p in (root / "postgres").rglob("*") if "postgresql:" in p.name or "5432" in p.name]
    return {"targets": targets, "failures": failures, "reports": reports, "strays": strays}


def _tables(warehouse: Warehouse) -> set[str]:
    schemas = ", ".join(f"'{s}'" for s in set(warehouse.schemas.values()))
    rows = warehouse.fetch_rows(
        f"select table_name from information_schema.tables where table_schema in ({schemas})")
    return {row[0] for row in rows} - SKIPPED_TABLES


def test_runs_succeed_on_both_backends(two_runs) -> None:
    assert not two_runs["failures"], "\n".join(two_runs["failures"])
    assert not two_runs["strays"]


def test_the_report_says_the_same_on_both_backends(two_runs) -> None:
    reports = two_runs["reports"]
    assert reports["duckdb"] == reports["postgres"]
    assert any(line.startswith("measurement: ") and not line.startswith("measurement: 0 messages")
               for line in reports["duckdb"]), reports["duckdb"]


def test_every_table_is_equal_on_duckdb_and_postgres(two_runs) -> None:
    targets = two_runs["targets"]
    with open_warehouse(targets["duckdb"], read_only=True) as duck, open_warehouse(targets["postgres"]) as pg:
        duck_tables, pg_tables = _tables(duck), _tables(pg)
        assert "send_ledger" in duck_tables and "customer_profile" in duck_tables  # the run built the graph
        diffs = [diff for table in sorted(duck_tables | pg_tables)
                 if (diff := compare_table(duck, pg, table, WALL_CLOCK_COLUMNS | FOLDER_COLUMNS)) is not None]
    equal = len(duck_tables | pg_tables) - len(diffs)
    assert not diffs, f"{len(diffs)} tables differ ({equal} equal):\n" + "\n".join(map(str, diffs))

