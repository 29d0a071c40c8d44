"""The same benchmark world on several warehouses, side by side (`run_bench.py --backends duckdb,postgres`).

Each backend runs in a fresh process (the Dagster definitions read CRMFLOW_WAREHOUSE at import), one
after the other, on the same landing files (generated once into the landing cache, then hard-linked);
PostgreSQL gets a fresh database on the server, dropped afterwards. The parent collects each child's
JSON figures and writes one side-by-side section: full run, incremental day and journey tick per stage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@contextmanager
def postgres_database(server: str, keep: bool = False) -> Iterator[str]:
    """A new database `crmflow_bench_<random>` on `server` (its URL), dropped afterwards unless `keep`."""
    from crmflow.warehouse import open_warehouse

    server = server.rstrip("/")
    dbname = f"crmflow_bench_{uuid.uuid4().hex[:10]}"
    with open_warehouse(f"{server}/postgres") as admin:
        admin.execute(f'create database "{dbname}"')
    try:
        yield f"{server}/{dbname}"
    finally:
        if keep:
            print(f"kept PostgreSQL database {dbname}", flush=True)
        else:
            with open_warehouse(f"{server}/postgres") as admin:
                admin.execute(f'drop database if exists "{dbname}" with (force)')


def child_argv(args: argparse.Namespace, backend: str, cache: Path, out: Path, figures: Path) -> list[str]:
    """run_bench.py arguments for one backend's run (the same world and phases as the parent's)."""
    argv = [str(BENCH_DIR / "run_bench.py"), "--backend", backend, "--users", str(args.users),
            "--days", str(args.days), "--end", args.end.isoformat(), "--seed", str(args.seed),
            "--landing-cache", str(cache), "--out", str(out), "--json", str(figures),
            "--pg-server", args.pg_server]
    argv += [flag for flag, on in (("--no-incremental", args.no_incremental), ("--no-tick", args.no_tick),
                                   ("--keep-database", args.keep_database)) if on]
    if args.groups:
        argv += ["--groups", args.groups]
    if args.no_dispatch or backend != "duckdb":  # dispatch throughput does not depend on the warehouse
        argv.append("--no-dispatch")
    else:
        argv += ["--dispatch-emails", str(args.dispatch_emails), "--dispatch-sms", str(args.dispatch_sms),
                 "--dispatch-push", str(args.dispatch_push)]
    return argv


def run_side_by_side(args: argparse.Namespace, _argv: list[str]) -> int:
    from run_bench import write_report, write_side_by_side

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in ("duckdb", "postgres")]
    if unknown or not backends:
        print(f"--backends: unknown {', '.join(unknown) or '(none given)'}; expected duckdb and/or postgres",
              file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="crmflow-bench-backends-"))
    cache = args.landing_cache or scratch / "landing-cache"
    figures: dict[str, Any] = {"measured_on": datetime.now(UTC).date().isoformat(),
                               "config": {"users": args.users, "days": args.days, "end": args.end.isoformat(),
                                          "seed": args.seed, "backends": backends},
                               "backends": {}}
    ok = True
    try:
        for backend in backends:
            out, saved = scratch / f"{backend}.md", scratch / f"{backend}.json"
            print(f"== {backend}", flush=True)
            done = subprocess.run([sys.executable, *child_argv(args, backend, cache, out, saved)], check=False)
            ok = ok and done.returncode == 0
            if saved.exists():  # saved after every phase: a failed run still reports what it finished
                figures["backends"][backend] = json.loads(saved.read_text())
                if backend == "duckdb":  # the DuckDB run is also the usual per-scale section
                    write_report(args.out, figures["backends"][backend])
            write_side_by_side(args.out, figures)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(write_side_by_side(args.out, figures))
    return 0 if ok else 1
