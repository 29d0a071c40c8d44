"""The dispatch crash test's world and dispatcher (tests/test_dispatch_crash.py, bench/bench_dispatch.py).

A world is a warehouse (a DuckDB path or a PostgreSQL URL) with customer tables and one journey per
channel ticked once, marketing config, an outbox and a landing folder. Run as a script
(`python tests/helpers_dispatch.py <world.json> <as_of> <workers>`) it is one `crmflow dispatch`:
channels from channels.yaml and the environment (the local mock providers), then dispatch_all with
N workers; it prints READY before dispatching and DONE <report json> after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers_reliability import World

HERE = Path(__file__).resolve()


class DispatchWorld(World):
    """helpers_reliability.World with a landing folder (delivery events) beside the outbox."""

    @property
    def landing_dir(self) -> str:
        return str(Path(self.outbox_dir).parent / "landing")


def build_dispatch_world(root: Path, warehouse: str, users: int, channels: tuple[str, ...],
                         policies: str, channels_config: str) -> DispatchWorld:
    from helpers_reliability import journey_yaml, seed_new_users_and_tick, user_profile

    from crmflow.warehouse import open_warehouse

    marketing = root / "marketing"
    (marketing / "journeys").mkdir(parents=True, exist_ok=True)
    for channel in channels:
        (marketing / "journeys" / f"rel_{channel}.yaml").write_text(journey_yaml(f"rel_{channel}", channel))
    (marketing / "policies.yaml").write_text(policies)
    (marketing / "channels.yaml").write_text(channels_config)
    with open_warehouse(warehouse) as wh:
        seed_new_users_and_tick(wh, marketing, channels, [user_profile(i) for i in range(users)])
    return DispatchWorld(warehouse, str(marketing), str(root / "outbox"), list(channels), users)


def start_dispatch(world_file: Path, as_of: str, workers: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE), str(world_file), as_of, str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(HERE.parent.parent),
                            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join(
                                [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])},
                            start_new_session=True)


def children(pid: int) -> list[int]:
    """The processes `pid` forked (its dispatch workers), from /proc."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def report_of(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("DONE "):
            return json.loads(line[5:])
    return None


def _main(world_file: str, as_of_text: str, workers: str) -> int:
    from connectors.channels.config import load_channels_config
    from connectors.channels.factory import build_channels
    from crmflow.journeys.dispatch import DispatchLockedError
    from crmflow.journeys.runner import JourneyConfig, dispatch_all
    from crmflow.settings import parse_as_of
    from crmflow.warehouse import open_warehouse

    world = DispatchWorld.load(world_file)
    marketing = Path(world.marketing_dir)
    channels = build_channels(load_channels_config(marketing / "channels.yaml"), "reliability", world.outbox_dir)
    as_of = parse_as_of(as_of_text)
    print("READY", flush=True)
    duckdb_path = None if world.warehouse.startswith("postgresql://") else Path(world.warehouse)
    try:
        with open_warehouse(world.warehouse) as wh:
            report = dispatch_all(wh, JourneyConfig(marketing), as_of, channels, duckdb_path, workers=int(workers))
    except DispatchLockedError as exc:
        print(f"LOCKED {exc}", flush=True)
        return 3
    print("DONE " + json.dumps(report.metadata(), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
