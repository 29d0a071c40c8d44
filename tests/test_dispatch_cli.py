"""`crmflow dispatch` and `crmflow ledger status` next to a run (issue 15 items 4-5): on DuckDB the
command says in one line that it runs one worker; a reader that finds the DuckDB file held by a run
says who holds it and since when, in one line (exit 2), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers_dispatch import build_dispatch_world
from helpers_reliability import AS_OF, policies_yaml
from typer.testing import CliRunner

from orchestration.cli import app

OUTBOX_ONLY = "environments:\n  dev: {}\n"


def test_dispatch_on_duckdb_runs_one_worker_and_says_so(tmp_path: Path, monkeypatch) -> None:
    world = build_dispatch_world(tmp_path, str(tmp_path / "w.duckdb"), 5, ("email",), policies_yaml(), OUTBOX_ONLY)
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", world.warehouse)
    monkeypatch.setenv("CRMFLOW_MARKETING_DIR", world.marketing_dir)
    monkeypatch.setenv("CRMFLOW_OUTBOX_DIR", world.outbox_dir)
    monkeypatch.setenv("CRMFLOW_ENV", "dev")
    result = CliRunner().invoke(app, ["dispatch", "--workers", "4", "--as-of", AS_OF.isoformat()])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("DuckDB: one dispatch worker (an embedded file has a single writer); --workers 4 "
                        "applies on PostgreSQL")
    assert "with 1 worker(s): claimed 5, sent 5, failed 0, unknown 0" in lines[1]
    assert len((Path(world.outbox_dir) / "email.jsonl").read_text().splitlines()) == 5


def test_ledger_status_while_a_run_holds_the_duckdb_file(tmp_path: Path) -> None:
    world = build_dispatch_world(tmp_path, str(tmp_path / "w.duckdb"), 3, ("email",), policies_yaml(), OUTBOX_ONLY)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time, duckdb
        from datetime import datetime, UTC
        from crmflow.run_holder import holding
        with holding({world.warehouse!r}, "crmflow run", now=datetime(2026, 11, 20, 12, 0, tzinfo=UTC)):
            con = duckdb.connect({world.warehouse!r})
            print("HOLDING", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("HOLDING")
        status = subprocess.run([sys.executable, "-m", "orchestration.cli", "ledger", "status"],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CRMFLOW_WAREHOUSE": world.warehouse})
    finally:
        holder.kill()
        holder.wait()
    assert status.returncode == 2, (status.stdout, status.stderr)
    assert status.stderr.strip().splitlines() == [
        f"crmflow: error: the warehouse {world.warehouse} is held by `crmflow run` (pid {holder.pid}) since "
        "2026-11-20T12:00:00+00:00; an embedded DuckDB file admits one process at a time, so "
        "`crmflow ledger status` has to wait until it finishes (or use PostgreSQL, where readers never wait)"]
    assert "Traceback" not in status.stderr
