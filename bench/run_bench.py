"""Stage benchmark: generate N users, run the whole pipeline, a journey tick, add a day, run again,
measure dispatch and the definitions load, report.

    .venv/bin/python bench/run_bench.py --users 100000 [--out docs/benchmarks.md] [--json path]
    .venv/bin/python bench/run_bench.py --users 1000000 --landing-cache /tmp/crmflow-landing  # reuse data

Paths (warehouse, landing, outbox, exports) point into a temporary work folder; the environment is
set before crmflow's Dagster definitions are imported, because they read it at import time. The
history and the incremental day come from one simulated world (GeneratorConfig.emit_until /
emit_since), so the extra day continues the same customers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT))

from report import HOW_TO, machine, render_markdown  # noqa: E402
from sampler import Sampler  # noqa: E402
from stages import RunTiming, step_timings  # noqa: E402

from crmflow.generator import GeneratorConfig, generate_landing  # noqa: E402

SOURCES = ("events", "registrations", "orders")
BACKENDS = ("duckdb", "postgres")
DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
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
    parser.add_argument("--landing-cache", type=Path, default=None,
                        help="keep the generated history here and reuse it when the config matches")
    parser.add_argument("--no-tick", action="store_true", help="skip the separate journey tick run")
    parser.add_argument("--no-dispatch", action="store_true", help="skip the dispatch throughput run")
    parser.add_argument("--dispatch-emails", type=int, default=20_000)
    parser.add_argument("--dispatch-sms", type=int, default=2_000)
    parser.add_argument("--dispatch-push", type=int, default=2_000)
    parser.add_argument("--backends", default="",
                        help="comma-separated warehouses to run the same world on, side by side in one "
                             "run (duckdb,postgres); each runs in a fresh process and the report gets a "
                             "side-by-side section")
    parser.add_argument("--backend", choices=BACKENDS, default="duckdb",
                        help="the warehouse of this run (postgres: a fresh database on --pg-server)")
    parser.add_argument("--pg-server", default=DEFAULT_PG_SERVER,
                        help="PostgreSQL server URL without a database (the benchmark creates and drops one)")
    parser.add_argument("--keep-database", action="store_true",
                        help="postgres: keep the benchmark's database afterwards (its name is printed)")
    return parser.parse_args(argv)


def point_environment_at(work: Path) -> None:
    os.environ["CRMFLOW_WAREHOUSE"] = str(work / "warehouse.duckdb")
    os.environ["CRMFLOW_LANDING_DIR"] = str(work / "landing")
    os.environ["CRMFLOW_OUTBOX_DIR"] = str(work / "outbox")
    os.environ["CRMFLOW_EXPORT_DIR"] = str(work / "exports")
    os.environ["CRMFLOW_MARKETING_DIR"] = str(marketing_without_approval(work))
    os.environ.pop("CRMFLOW_ROLES_FILE", None)  # the copy's roles.yaml, not another file
    os.environ.setdefault("CRMFLOW_TIMEZONE", "UTC")
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"


def marketing_without_approval(work: Path) -> Path:
    """The marketing folder copied into the work folder with roles.yaml `approval.required: false`.

    Journeys run only when approved (crmflow/governance/approvals.py): with the repository's roles.yaml
    every journey "enrols nobody, sends nothing", and the journey stages and the tick would time a no-op.
    """
    import yaml

    source = Path(os.environ.get("CRMFLOW_MARKETING_DIR", REPO_ROOT / "marketing"))
    target = work / "marketing"
    if source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)
    roles_path = target / "roles.yaml"
    roles = yaml.safe_load(roles_path.read_text()) or {}
    roles.setdefault("approval", {})["required"] = False
    roles_path.write_text(yaml.safe_dump(roles, sort_keys=False))
    return target


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


def run_once(defs: Any, as_of: datetime, groups: set[str], job_name: str = "crmflow_full") -> tuple[RunTiming, bool, Sampler]:
    import dagster as dg

    from orchestration.asof import as_of_tags

    graph = defs.resolve_asset_graph()

    def group_of(key: dg.AssetKey) -> str | None:
        return graph.get(key).group_name if graph.has(key) else None

    job = defs.resolve_job_def(job_name)
    if groups:  # a subset (the smoke test runs ingest only: the whole dbt build takes too long there)
        keys = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups}
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=keys)
    with dg.DagsterInstance.ephemeral() as instance, Sampler() as sampler:
        result = job.execute_in_process(instance=instance, tags=as_of_tags(as_of), raise_on_error=False)
        records = instance.all_logs(result.run_id)
    return step_timings(records, group_of), result.success, sampler


def summarise(timing: RunTiming, success: bool, rows: int, sampler: Sampler) -> dict[str, Any]:
    ingest = timing.by_group.get("ingest", 0.0)
    steps = []
    stages: dict[str, dict[str, Any]] = {}
    for step in timing.steps:
        usage = sampler.window(step.started_at, step.ended_at)
        steps.append({**vars(step), **usage})
        stage = stages.setdefault(step.stage, {"wall_seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mib": None})
        stage["wall_seconds"] += step.seconds
        stage["cpu_seconds"] += usage["cpu_seconds"] or 0.0
        if usage["peak_rss_mib"] is not None:
            stage["peak_rss_mib"] = max(stage["peak_rss_mib"] or 0.0, usage["peak_rss_mib"])
    first = min((s.started_at for s in timing.steps), default=0.0)
    last = max((s.ended_at for s in timing.steps), default=0.0)
    whole = sampler.window(first, last) if timing.steps else {"cpu_seconds": None, "peak_rss_mib": None}
    return {
        "success": success,
        "wall_seconds": timing.wall_seconds,
        "cpu_seconds": whole["cpu_seconds"],
        "peak_rss_mib": sampler.peak_rss_mib(),
        "by_group": timing.by_group,
        "by_stage": stages,
        "steps": steps,
        "failed_steps": timing.failed_steps,
        "ingest_seconds": ingest,
        "landing_rows": rows,
        "ingest_rows_per_s": rows / ingest if ingest > 0 else 0.0,
    }


def definitions_load_seconds() -> dict[str, float]:
    """Import + resolve the Dagster definitions in a fresh interpreter (what `dagster dev` pays)."""
    code = ("import time, resource; w = time.perf_counter(); c = time.process_time(); "
            "from orchestration.definitions import defs; defs.resolve_all_asset_keys(); "
            "print(time.perf_counter() - w, time.process_time() - c)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True, timeout=300)
    wall, cpu = (float(v) for v in done.stdout.split()[-2:])
    return {"fresh_process_wall_seconds": wall, "fresh_process_cpu_seconds": cpu}


def history_and_day(args: argparse.Namespace) -> tuple[Any, Any]:
    """Configs of the history (days ending args.end) and of the next day, from the same world."""
    next_day = args.end + timedelta(days=1)
    world = {"users": args.users, "days": args.days + 1, "end": next_day, "seed": args.seed}
    return GeneratorConfig(**world, emit_until=args.end), GeneratorConfig(**world, emit_since=next_day,
                                                                           emit_until=next_day)


def generate_history(config: Any, landing: Path, cache: Path | None) -> tuple[dict[str, Any], float]:
    """Generate into `landing`, or hard-link a cached copy generated from the same config.

    Also used for the incremental day: the generator simulates the whole world to emit one day
    (about 15 minutes at 1M users on a busy machine), so the day is worth caching too.
    """
    started = time.perf_counter()
    if cache is None:
        return generate_landing(config, landing), time.perf_counter() - started
    since = f"-since{config.emit_since}" if config.emit_since else ""
    key = f"u{config.users}-d{config.days}-e{config.end}-s{config.seed}{since}-until{config.emit_until}"
    cached = cache / key
    marker = cached / "_bench_counts.json"  # written last: the cached copy is complete
    if not marker.exists():
        shutil.rmtree(cached, ignore_errors=True)
        marker.parent.mkdir(parents=True)
        marker.with_suffix(".tmp").write_text(json.dumps(generate_landing(config, cached)))
        marker.with_suffix(".tmp").rename(marker)
    counts = json.loads(marker.read_text())
    for path in cached.rglob("*"):  # hard links, no copies; later runs only add new files
        if path.is_file() and not path.name.startswith("_"):  # manifests and markers stay behind
            target = landing / path.relative_to(cached)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return counts, time.perf_counter() - started


def landing_size_mib(landing: Path) -> float:
    return sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_from:
        figures = json.loads(args.render_from.read_text())
        if "backends" in figures:
            write_side_by_side(args.out, figures)
        else:
            write_report(args.out, figures)
        return 0
    if args.backends:
        from backends import run_side_by_side

        return run_side_by_side(args, argv if argv is not None else sys.argv[1:])
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="crmflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    point_environment_at(work)
    if args.backend == "postgres":
        from backends import postgres_database

        with postgres_database(args.pg_server, args.keep_database) as url:
            os.environ["CRMFLOW_WAREHOUSE"] = url
            return _run(args, work)
    return _run(args, work)


def _run(args: argparse.Namespace, work: Path) -> int:
    landing = work / "landing"
    def save(figures: dict[str, Any]) -> str:
        markdown = write_report(args.out, figures)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        return markdown

    try:
        figures = benchmark(args, work, landing, save)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(save(figures))
    return 0 if figures["full_run"]["success"] else 1


def write_report(out: Path, figures: dict[str, Any]) -> str:
    """Write this scale's section into `out`, keeping other scales' sections and hand-written text."""
    users = figures["config"]["users"]
    return write_section(out, f"bench:users={users}", render_markdown(figures))


def write_side_by_side(out: Path, figures: dict[str, Any]) -> str:
    """Write the backends section (one run of --backends) into `out`."""
    from report import render_side_by_side

    users = figures["config"]["users"]
    return write_section(out, f"bench:backends:users={users}", render_side_by_side(figures))


def write_section(out: Path, marker: str, body: str) -> str:
    """Replace the text between `<!-- marker -->` and `<!-- /marker -->` (or append it)."""
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    section = f"{begin}\n{body}\n{end}\n"
    text = out.read_text() if out.exists() else f"# Benchmarks\n\n{HOW_TO}\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + section.rstrip("\n") + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return section


def benchmark(args: argparse.Namespace, work: Path, landing: Path,
              save: Callable[[dict[str, Any]], Any] = lambda figures: None) -> dict[str, Any]:
    """Every phase's figures are saved as soon as it ends (`save`), so a run stopped part-way (the
    1M run has a time budget) still leaves the phases it finished in the report."""
    history, next_day = history_and_day(args)
    counts, generate_seconds = generate_history(history, landing, args.landing_cache)
    landing_mib = landing_size_mib(landing)
    print(f"generated {landing_rows(counts):,} landing rows in {generate_seconds:.1f}s", flush=True)
    bound = lower_bound(landing)

    from orchestration.cli import prepare_dbt_manifest

    prepare_dbt_manifest(force=manifest_is_stale())
    definitions = definitions_load_seconds()
    started = time.perf_counter()
    from orchestration.definitions import defs

    import_seconds = time.perf_counter() - started
    started = time.perf_counter()
    defs.resolve_all_asset_keys()
    definitions.update(import_seconds=import_seconds, resolve_seconds=time.perf_counter() - started)

    groups = {g for g in args.groups.split(",") if g}
    figures: dict[str, Any] = {
        "measured_on": datetime.now(UTC).date().isoformat(),  # report metadata only
        "config": {"users": args.users, "days": args.days, "end": args.end.isoformat(), "seed": args.seed,
                   "backend": args.backend,
                   "groups": sorted(groups)},
        "machine": machine(),
        "generate": {"seconds": generate_seconds, "counts": counts, "landing_mib": landing_mib,
                     "cached": args.landing_cache is not None},
        "lower_bound": bound,
        "definitions": definitions,
        "full_run": None, "journey_tick": None, "incremental_run": None, "dispatch": None,
        "peak_rss_mib": {},
    }

    def checkpoint() -> None:
        figures["peak_rss_mib"] = {
            "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "sampled_self_and_children": figures["full_run"]["peak_rss_mib"] if figures["full_run"] else None,
        }
        save(figures)

    as_of = datetime.combine(args.end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    timing, success, sampler = run_once(defs, as_of, groups)
    full = summarise(timing, success, landing_rows(counts), sampler)
    full["ratio_to_lower_bound"] = full["wall_seconds"] / bound["seconds"] if bound["seconds"] else 0.0
    figures["full_run"] = full
    print(f"full run {'ok' if success else 'FAILED'} in {timing.wall_seconds:.1f}s", flush=True)
    checkpoint()

    if not args.no_tick and not groups:
        # An hourly tick over the whole audience, an hour after the full run (nothing new ingested).
        tick_timing, tick_success, tick_sampler = run_once(defs, as_of + timedelta(hours=1), set(), "journey_tick")
        figures["journey_tick"] = summarise(tick_timing, tick_success, 0, tick_sampler)
        print(f"journey tick {'ok' if tick_success else 'FAILED'} in {tick_timing.wall_seconds:.1f}s", flush=True)
        checkpoint()

    if not args.no_dispatch:
        from bench_dispatch import measure

        figures["dispatch"] = measure(args.dispatch_emails, args.dispatch_sms, args.dispatch_push, (50.0, 500.0))
        checkpoint()

    if not args.no_incremental:
        day_counts, _ = generate_history(next_day, landing, args.landing_cache)
        inc_timing, inc_success, inc_sampler = run_once(defs, as_of + timedelta(days=1), groups)
        incremental = summarise(inc_timing, inc_success, landing_rows(day_counts), inc_sampler)
        incremental["share_of_full_run"] = inc_timing.wall_seconds / timing.wall_seconds if timing.wall_seconds else 0.0
        figures["incremental_run"] = incremental
        print(f"incremental run {'ok' if inc_success else 'FAILED'} in {inc_timing.wall_seconds:.1f}s", flush=True)
        checkpoint()
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
