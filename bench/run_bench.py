"""Stage benchmark: generate N users, run the whole pipeline, add a day, run again, report.

    .venv/bin/python bench/run_bench.py --users 100000 [--out docs/benchmarks.md] [--json path]

Paths (warehouse, landing, outbox, exports) point into a temporary work folder; the environment is
set before crmflow's Dagster definitions are imported, because they read it at import time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT))

from report import machine, render_markdown  # noqa: E402
from stages import RunTiming, step_timings  # noqa: E402

from crmflow.generator import GeneratorConfig, generate_landing  # noqa: E402

SOURCES = ("events", "registrations", "orders")
DEFAULT_END = date(2026, 11, 20)  # fixed: the benchmark never depends on the wall clock


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END, help="last generated day")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder, removed after")
    parser.add_argument("--no-incremental", action="store_true", help="skip the incremental-day run")
    parser.add_argument("--groups", default="", help="comma-separated asset groups to run (default: the whole job)")
    parser.add_argument("--render-from", type=Path, default=None, help="re-render --out from a saved --json file")
    return parser.parse_args(argv)


def point_environment_at(work: Path) -> None:
    os.environ["CRMFLOW_WAREHOUSE"] = str(work / "warehouse.duckdb")
    os.environ["CRMFLOW_LANDING_DIR"] = str(work / "landing")
    os.environ["CRMFLOW_OUTBOX_DIR"] = str(work / "outbox")
    os.environ["CRMFLOW_EXPORT_DIR"] = str(work / "exports")
    os.environ.setdefault("CRMFLOW_TIMEZONE", "UTC")
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"


def lower_bound(landing: Path) -> dict[str, Any]:
    """One count(*) per source over its landing files: the least any ingestion must spend reading."""
    import duckdb

    per_source: dict[str, float] = {}
    con = duckdb.connect()
    try:
        for source in SOURCES:
            started = time.perf_counter()
            folder = landing / source
            jsonl = sorted(str(p) for p in folder.glob("*.jsonl"))
            csv = sorted(str(p) for p in folder.glob("*.csv"))
            # Line-level reads (one varchar column): the dirty rows would stop a typed reader.
            for files in (jsonl, csv):
                if files:
                    con.execute(
                        "select count(*) from read_csv(?, columns={'line': 'varchar'}, header=false, "
                        "delim='\\x01', quote='', escape='', ignore_errors=true, strict_mode=false)",
                        [files],
                    ).fetchone()
            per_source[source] = time.perf_counter() - started
    finally:
        con.close()
    return {"seconds": sum(per_source.values()), "per_source": per_source}


def manifest_is_stale() -> bool:
    """True when a dbt file changed after target/manifest.json was written (others edit dbt too)."""
    from crmflow.settings import DBT_PROJECT_DIR

    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        return True
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *(DBT_PROJECT_DIR / "dbt_project").rglob("*")]
    newest = max((p.stat().st_mtime for p in sources if p.is_file() and "target" not in p.parts), default=0)
    return newest > manifest.stat().st_mtime


def landing_rows(counts: dict[str, int]) -> int:
    return counts["event_rows"] + counts["registration_rows"] + counts["order_rows"]


def run_once(defs: Any, as_of: datetime, groups: set[str]) -> tuple[RunTiming, bool]:
    import dagster as dg

    from orchestration.asof import as_of_tags

    graph = defs.resolve_asset_graph()

    def group_of(key: dg.AssetKey) -> str | None:
        return graph.get(key).group_name if graph.has(key) else None

    job = defs.resolve_job_def("crmflow_full")
    if groups:  # a subset (the smoke test runs ingest only: the whole dbt build takes too long there)
        keys = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups}
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, tags=as_of_tags(as_of), raise_on_error=False)
        records = instance.all_logs(result.run_id)
    return step_timings(records, group_of), result.success


def summarise(timing: RunTiming, success: bool, rows: int) -> dict[str, Any]:
    ingest = timing.by_group.get("ingest", 0.0)
    return {
        "success": success,
        "wall_seconds": timing.wall_seconds,
        "by_group": timing.by_group,
        "steps": [vars(s) for s in timing.steps],
        "failed_steps": timing.failed_steps,
        "ingest_seconds": ingest,
        "landing_rows": rows,
        "ingest_rows_per_s": rows / ingest if ingest > 0 else 0.0,
    }


def landing_size_mib(landing: Path) -> float:
    return sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_from:
        figures = json.loads(args.render_from.read_text())
        args.out.write_text(render_markdown(figures))
        return 0
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="crmflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    point_environment_at(work)
    landing = work / "landing"
    try:
        figures = benchmark(args, work, landing)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(figures)
    args.out.write_text(markdown)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(markdown)
    return 0 if figures["full_run"]["success"] else 1


def benchmark(args: argparse.Namespace, work: Path, landing: Path) -> dict[str, Any]:
    config = GeneratorConfig(users=args.users, days=args.days, end=args.end, seed=args.seed)
    started = time.perf_counter()
    counts = generate_landing(config, landing)
    generate_seconds = time.perf_counter() - started
    landing_mib = landing_size_mib(landing)
    print(f"generated {landing_rows(counts):,} landing rows in {generate_seconds:.1f}s", flush=True)
    bound = lower_bound(landing)

    from orchestration.cli import prepare_dbt_manifest

    prepare_dbt_manifest(force=manifest_is_stale())
    started = time.perf_counter()
    from orchestration.definitions import defs

    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    defs.resolve_all_asset_keys()
    resolve_seconds = time.perf_counter() - started

    as_of = datetime.combine(args.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    groups = {g for g in args.groups.split(",") if g}
    timing, success = run_once(defs, as_of, groups)
    full = summarise(timing, success, landing_rows(counts))
    full["ratio_to_lower_bound"] = full["wall_seconds"] / bound["seconds"] if bound["seconds"] else 0.0
    print(f"full run {'ok' if success else 'FAILED'} in {timing.wall_seconds:.1f}s", flush=True)

    incremental = None
    if not args.no_incremental:
        next_day = args.end + timedelta(days=1)
        day_config = GeneratorConfig(users=args.users, days=args.days + 1, end=next_day, seed=args.seed,
                                     emit_since=next_day)
        day_counts = generate_landing(day_config, landing)
        inc_timing, inc_success = run_once(defs, as_of + timedelta(days=1), groups)
        incremental = summarise(inc_timing, inc_success, landing_rows(day_counts))
        print(f"incremental run {'ok' if inc_success else 'FAILED'} in {inc_timing.wall_seconds:.1f}s", flush=True)

    return {
        "measured_on": datetime.now(UTC).date().isoformat(),  # report metadata only
        "config": {"users": args.users, "days": args.days, "end": args.end.isoformat(), "seed": args.seed,
                   "groups": sorted(groups)},
        "machine": machine(),
        "generate": {"seconds": generate_seconds, "counts": counts, "landing_mib": landing_mib},
        "lower_bound": bound,
        "definitions": {"import_seconds": import_seconds, "resolve_seconds": resolve_seconds},
        "full_run": full,
        "incremental_run": incremental,
        "peak_rss_mib": {
            "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
