"""Concurrency: two dispatch runs started at once (a schedule overlap, a manual run during a
scheduled one) never both dispatch. Layers: Dagster's run queue (max_concurrent_runs: 1), DuckDB's
single-writer file lock (the second process cannot open the warehouse), and the dispatch lock file
(for a second dispatcher that does get a connection). The warehouse stays readable and consistent."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import yaml
from helpers_reliability import (
    AS_OF,
    HERE,
    build_world,
    ledger_rows,
    providers_running,
    run_dispatcher,
    start_dispatcher,
)
from test_reliability_crash import check_crash_invariants

from crmflow.journeys.dispatch import lock_path_for
from crmflow.settings import REPO_ROOT

USERS = 30


def test_two_dispatchers_started_together_only_one_dispatches(tmp_path: Path) -> None:
    world = build_world(tmp_path, USERS, ("email", "sms"))
    world_file = world.save(tmp_path / "world.json")
    with providers_running(delay_s=0.01) as providers:
        procs = [start_dispatcher(world_file, AS_OF + timedelta(minutes=1), providers.env()) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
        codes = [p.returncode for p in procs]
        accepted = providers.accepted()
    winners = [i for i, (out, _) in enumerate(outputs) if "DONE " in out]
    assert len(winners) == 1, (codes, outputs)
    loser = 1 - winners[0]
    out, err = outputs[loser]
    assert codes[loser] != 0
    # a clear message: DuckDB's writer lock names the holder; the dispatch lock names the lock file
    assert "Conflicting lock is held" in err or "another dispatch holds" in out, (out, err)
    by_state = check_crash_invariants(world.warehouse, accepted, kills=0)
    assert by_state == {"sent": 2 * USERS}


def test_dispatcher_exits_when_another_holds_the_dispatch_lock(tmp_path: Path) -> None:
    world = build_world(tmp_path, 5, ("email",))
    world_file = world.save(tmp_path / "world.json")
    holder = subprocess.Popen([sys.executable, str(HERE), "hold-lock", world.warehouse, "60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().startswith("LOCKED-BY-ME")
        with providers_running() as providers:
            run = run_dispatcher(world_file, AS_OF + timedelta(minutes=1), providers.env())
            assert run.returncode == 3, run.stderr
            assert f"another dispatch holds {lock_path_for(world.warehouse)} (pid " in run.stdout, run.stdout
            assert "; not dispatching" in run.stdout
            assert providers.accepted() == {}
    finally:
        holder.kill()
        holder.wait()
    assert {r["state"] for r in ledger_rows(world.warehouse)} == {"planned"}  # untouched, still readable
    with providers_running() as providers:  # lock released by the holder's death: dispatch proceeds
        run = run_dispatcher(world_file, AS_OF + timedelta(minutes=2), providers.env())
        assert run.returncode == 0 and len(providers.accepted()) == 5, run.stderr


def test_dagster_run_queue_allows_one_run_at_a_time() -> None:
    config = yaml.safe_load((REPO_ROOT / "orchestration" / "dagster.yaml").read_text(encoding="utf-8"))
    assert config["run_queue"]["max_concurrent_runs"] == 1
