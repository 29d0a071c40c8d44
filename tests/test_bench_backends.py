"""`run_bench.py --backends duckdb,postgres`: the same world on both warehouses in one run, side by side."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_postgres import fresh_database

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))


def test_side_by_side_section_has_each_backend_per_phase_and_stage(tmp_path: Path) -> None:
    from run_bench import write_side_by_side

    duck = json.loads((REPO / "tests" / "fixtures" / "bench_figures.json").read_text())
    pg = copy.deepcopy(duck)
    pg["full_run"]["by_stage"]["ingest"]["wall_seconds"] = 123.4
    pg["full_run"]["success"], pg["full_run"]["failed_steps"] = False, ["operator_tasks"]
    figures = {"measured_on": "2026-12-02",
               "config": {"users": 5, "days": 30, "end": "2026-11-20", "seed": 42, "backends": ["duckdb", "postgres"]},
               "backends": {"duckdb": duck, "postgres": pg}}
    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\n<!-- bench:users=5 -->\nkept\n<!-- /bench:users=5 -->\n")
    write_side_by_side(out, figures)
    text = out.read_text()
    assert "kept" in text and text.count("<!-- bench:backends:users=5 -->") == 1
    assert "| phase | stage | duckdb wall | duckdb CPU | postgres wall | postgres CPU |" in text
    ingest = next(line for line in text.splitlines() if line.startswith("| full run | ingest |"))
    assert ingest.endswith("| 123.4 s | " + ingest.split(" | ")[-1])  # postgres's own figure, not duckdb's
    assert "postgres: full_run: failed steps operator_tasks" in text


@pytest.mark.long
@pytest.mark.slow  # two fresh benchmark processes (dbt manifest, definitions, ingest): ~1-2 min idle
def test_backends_run_ingests_the_same_world_on_duckdb_and_postgres(tmp_path: Path) -> None:
    with fresh_database("crmflow_bench_probe"):  # skips without a server (fails under CI=true)
        pass
    out, figures_path = tmp_path / "bench.md", tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_bench.py"), "--users", "150", "--days", "20",
         "--groups", "ingest", "--no-tick", "--backends", "duckdb,postgres", "--no-dispatch", "--no-incremental",
         "--landing-cache", str(tmp_path / "cache"), "--out", str(out), "--json", str(figures_path)],
        capture_output=True, text=True, timeout=1200, cwd=REPO, env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    duck, pg = figures["backends"]["duckdb"], figures["backends"]["postgres"]
    assert duck["config"]["backend"] == "duckdb" and pg["config"]["backend"] == "postgres"
    for run in (duck, pg):
        assert run["full_run"]["success"]
        assert {s["step_key"] for s in run["full_run"]["steps"]} >= {"raw_events", "raw_orders", "raw_registrations"}
    assert duck["generate"]["counts"] == pg["generate"]["counts"]  # one world, generated once
    text = out.read_text()
    assert "<!-- bench:backends:users=150 -->" in text and "| full run | ingest |" in text
