"""Render benchmark figures as docs/benchmarks.md (markdown) and a JSON file."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from typing import Any

PACKAGES = ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb", "duckdb", "pandas", "pyarrow", "numpy", "scikit-learn")


def machine() -> dict[str, Any]:
    mem_kb = 0
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/meminfo") as handle:
            mem_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": platform.platform(),
        "versions": {p: _version(p) for p in PACKAGES},
        "loadavg": " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:  # a missing optional package is reported, not fatal
        return "not installed"


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:,.1f} s"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


STAGE_ORDER = ("ingest", "dbt", "intelligence", "journeys", "banners", "tasks", "channels", "report", "other")


def _stage_table(run: dict[str, Any]) -> list[str]:
    stages = run.get("by_stage") or {}
    lines = ["| stage | wall time | CPU time | peak RSS (process + dbt) |", "|---|---|---|---|"]
    for name in sorted(stages, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else len(STAGE_ORDER)):
        st = stages[name]
        lines.append(f"| {name} | {_fmt(st['wall_seconds'])} | {_fmt(st['cpu_seconds'])} | {_mib(st['peak_rss_mib'])} |")
    lines.append(f"| **whole run** | **{_fmt(run['wall_seconds'])}** | **{_fmt(run.get('cpu_seconds'))}** | "
                 f"**{_mib(run.get('peak_rss_mib'))}** |")
    return lines


def _status(run: dict[str, Any]) -> str:
    return "succeeded" if run["success"] else "FAILED (steps: " + ", ".join(run["failed_steps"]) + ")"


def targets(figures: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(target, limit, measured, met) rows; met is None when the figure was not measured."""
    full, inc, tick = figures["full_run"], figures.get("incremental_run"), figures.get("journey_tick")
    rows: list[tuple[str, str, str, bool | None]] = []
    rows.append(("full run wall time", "<= 300 s at 1M users", _fmt(full["wall_seconds"]),
                 full["wall_seconds"] <= 300 if full["success"] else False))
    rss = full.get("peak_rss_mib")
    rows.append(("full run peak RSS", "<= 4,096 MiB", _mib(rss), None if rss is None else rss <= 4096))
    ratio = full.get("ratio_to_lower_bound")
    rows.append(("full run / raw-scan lower bound", "<= 10x", f"{ratio:,.1f}x", ratio <= 10))
    if inc:
        share = inc.get("share_of_full_run", 0.0) * 100
        rows.append(("incremental day / full run", "<= 10 %", f"{share:,.1f} %", share <= 10 and inc["success"]))
    if tick:
        rows.append(("journey tick over the whole audience", "<= 30 s", _fmt(tick["wall_seconds"]),
                     tick["wall_seconds"] <= 30 and tick["success"]))
    dispatch = figures.get("dispatch")
    if dispatch:
        for name, ch in dispatch["channels"].items():
            rows.append((f"{name} dispatch (mock provider)", f">= {ch['target_msg_per_s']:,.0f} msg/s",
                         f"{ch['msg_per_s']:,.0f} msg/s", ch["meets_target"]))
        for rl in dispatch["rate_limiter"]:
            rows.append((f"rate limiter at {rl['configured_per_s']:,.0f}/s", "within +-5 %",
                         f"{rl['error_pct']:+.2f} %", rl["within_5_pct"]))
    d = figures["definitions"]
    load = d.get("fresh_process_wall_seconds", d["import_seconds"] + d["resolve_seconds"])
    rows.append(("Dagster definitions load (fresh process)", "<= 3 s", _fmt(load), load <= 3))  # issue 20
    return rows


def render_markdown(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    cfg = figures["config"]
    full = figures["full_run"]
    inc = figures.get("incremental_run")
    tick = figures.get("journey_tick")
    gen = figures["generate"]
    d = figures["definitions"]
    lines = [
        f"## {cfg['users']:,} users",
        "",
        f"Measured {figures['measured_on']} with `bench/run_bench.py --users {cfg['users']}` "
        f"({cfg['days']} days of history ending {cfg['end']}, seed {cfg['seed']}"
        + (f", asset groups {', '.join(cfg['groups'])} only" if cfg.get("groups") else "") + ").",
        "",
        "### Machine",
        "",
        f"- {m['nproc']} CPU(s) ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['os']}, Python {m['python']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- load average when the run started: {m.get('loadavg', 'n/a')}",
        "",
        "### Data",
        "",
        f"- {gen['counts']['users']:,} users, {gen['counts']['event_rows']:,} event lines, "
        f"{gen['counts']['order_rows']:,} order rows, {gen['counts']['registration_rows']:,} registration rows "
        f"({gen['counts']['dirty_rows']:,} deliberately bad rows), {gen['landing_mib']:,.1f} MiB of landing files",
        f"- generated in {_fmt(gen['seconds'])}" + (" (hard-linked from the landing cache)" if gen.get("cached") else ""),
        "",
        "### Targets",
        "",
        "| target | limit | measured | met |",
        "|---|---|---|---|",
    ]
    for name, limit, measured, met in targets(figures):
        lines.append(f"| {name} | {limit} | {measured} | {'n/a' if met is None else 'yes' if met else '**no**'} |")
    lines += [
        "",
        "### Full run",
        "",
        *_stage_table(full),
        "",
        f"- run {_status(full)}",
        f"- ingest throughput: {full['ingest_rows_per_s']:,.0f} landing rows/s "
        f"({full['landing_rows']:,} rows in {_fmt(full['ingest_seconds'])})",
        f"- DuckDB lower bound (one `count(*)` per source over its landing files): {_fmt(figures['lower_bound']['seconds'])} "
        f"({', '.join(f'{k} {_fmt(v)}' for k, v in figures['lower_bound']['per_source'].items())}); "
        f"full run / lower bound: {full['ratio_to_lower_bound']:,.1f}x",
        f"- cost per user: {_per_user(full['wall_seconds'], cfg['users'])} wall, "
        f"{_per_user(full.get('cpu_seconds'), cfg['users'])} CPU",
        f"- Dagster definitions: {_fmt(d.get('fresh_process_wall_seconds'))} wall / "
        f"{_fmt(d.get('fresh_process_cpu_seconds'))} CPU in a fresh process (import + resolve); "
        f"{_fmt(d['import_seconds'])} to import in the benchmark process (libraries already loaded)",
        "",
        "Asset-group split (the dbt step divided by dbt's own per-model execution time):",
        "",
        "| asset group | wall time |",
        "|---|---|",
    ]
    for group, seconds in sorted(full["by_group"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {group} | {_fmt(seconds)} |")
    lines.append("")
    if tick:
        lines += [
            "### Journey tick",
            "",
            f"The `journey_tick` job (every journey, then dispatch to the outbox) one hour after the full run, "
            f"over all {cfg['users']:,} customers: **{_fmt(tick['wall_seconds'])}** wall, "
            f"{_fmt(tick.get('cpu_seconds'))} CPU, peak RSS {_mib(tick.get('peak_rss_mib'))}; {_status(tick)}.",
            "",
        ]
    if inc:
        lines += [
            "### Incremental day",
            "",
            f"One more day of the same simulated world ({inc['landing_rows']:,} new landing rows in per-day files), "
            f"then a second run as of the next day: **{_fmt(inc['wall_seconds'])}** "
            f"= {inc.get('share_of_full_run', 0) * 100:,.1f} % of the full run; {_status(inc)}.",
            "",
            *_stage_table(inc),
            "",
        ]
    missing = [name for name, key in (("journey tick", "journey_tick"), ("incremental day", "incremental_run"),
                                      ("dispatch", "dispatch")) if not figures.get(key)]
    if missing:
        lines += [f"Not measured in this run: {', '.join(missing)} (skipped, or the run was stopped first).", ""]
    dispatch = figures.get("dispatch")
    if dispatch:
        lines += ["### Dispatch (mock provider on 127.0.0.1)", "",
                  "| channel | messages | seconds | msg/s | HTTP requests |", "|---|---|---|---|---|"]
        for name, ch in dispatch["channels"].items():
            lines.append(f"| {name} | {ch['sent']:,} | {ch['seconds']:.2f} | {ch['msg_per_s']:,.0f} | {ch['requests']:,} |")
        lines.append("")
        for rl in dispatch["rate_limiter"]:
            lines.append(f"- rate limiter: configured {rl['configured_per_s']:,.0f}/s, measured "
                         f"{rl['measured_per_s']:,.2f}/s over {rl['tokens']:,} tokens ({rl['error_pct']:+.2f} %)")
        lines.append("")
    lines += [
        "### Slowest steps (full run)",
        "",
        "| step | wall time | CPU time | peak RSS | status |",
        "|---|---|---|---|---|",
    ]
    for step in sorted(full["steps"], key=lambda s: -s["seconds"])[:12]:
        lines.append(f"| {step['step_key']} | {_fmt(step['seconds'])} | {_fmt(step.get('cpu_seconds'))} | "
                     f"{_mib(step.get('peak_rss_mib'))} | {step['status']} |")
    lines.append("")
    return "\n".join(lines)


def render_side_by_side(figures: dict[str, Any]) -> str:
    """One section comparing the backends of one `--backends` run: per phase, per stage, wall and CPU."""
    cfg, runs = figures["config"], figures["backends"]
    names = [b for b in cfg["backends"] if b in runs]
    first = runs[names[0]] if names else None
    lines = [f"## {cfg['users']:,} users on {' and '.join(cfg['backends'])}", "",
             f"Measured {figures['measured_on']} with `bench/run_bench.py --users {cfg['users']} "
             f"--backends {','.join(cfg['backends'])}` ({cfg['days']} days of history ending {cfg['end']}, "
             f"seed {cfg['seed']}): the same landing files on each warehouse, one after the other, "
             "each in a fresh process.", ""]
    if first:
        m = first["machine"]
        lines += [f"- {m['nproc']} CPU(s), {m['memory_gib']} GiB RAM; load average when each run started: "
                  + ", ".join(f"{b} {runs[b]['machine'].get('loadavg', 'n/a')}" for b in names), ""]
    header = "| phase | stage | " + " | ".join(f"{b} wall | {b} CPU" for b in names) + " |"
    lines += [header, "|---|---|" + "---|---|" * len(names)]
    for phase, key in (("full run", "full_run"), ("journey tick", "journey_tick"),
                       ("incremental day", "incremental_run")):
        present = [runs[b].get(key) for b in names]
        if not any(present):
            continue
        stages = sorted({s for run in present if run for s in run.get("by_stage", {})},
                        key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else len(STAGE_ORDER))
        for stage in stages:
            cells = []
            for run in present:
                st = (run or {}).get("by_stage", {}).get(stage)
                cells.append(f"{_fmt(st['wall_seconds'])} | {_fmt(st['cpu_seconds'])}" if st else "n/a | n/a")
            lines.append(f"| {phase} | {stage} | " + " | ".join(cells) + " |")
        cells = [f"**{_fmt(run['wall_seconds'])}** | **{_fmt(run.get('cpu_seconds'))}**" if run else "n/a | n/a"
                 for run in present]
        lines.append(f"| **{phase}** | **whole** | " + " | ".join(cells) + " |")
    lines.append("")
    for b in names:
        failed = {key: runs[b][key]["failed_steps"] for key in ("full_run", "journey_tick", "incremental_run")
                  if runs[b].get(key) and not runs[b][key]["success"]}
        status = "; ".join(f"{k}: failed steps {', '.join(v)}" for k, v in failed.items()) or "every phase succeeded"
        slowest = sorted((runs[b].get("full_run") or {}).get("steps", []), key=lambda s: -s["seconds"])[:5]
        lines.append(f"- {b}: {status}; slowest full-run steps: "
                     + ", ".join(f"{s['step_key']} {_fmt(s['seconds'])}" for s in slowest))
    lines.append("")
    return "\n".join(lines)


def _per_user(seconds: float | None, users: int) -> str:
    return "n/a" if seconds is None or not users else f"{seconds / users * 1e6:,.0f} µs/user"


HOW_TO = """## How to rerun

```
make bench SCALE=100000          # or: .venv/bin/python bench/run_bench.py --users 100000
make bench SCALE=1000000
.venv/bin/python bench/run_bench.py --users 2000 --out /tmp/bench.md --json /tmp/bench.json
.venv/bin/python bench/bench_dispatch.py           # dispatch throughput + rate limiter only
```

The script generates the users into a temporary landing folder (or hard-links them from
`--landing-cache`), measures the raw-scan lower bound, loads the Dagster definitions in a fresh
process, runs the `crmflow_full` job in process against a temporary warehouse (as of the day after
the generated window), runs the `journey_tick` job an hour later, adds one more day of the same
simulated world and runs `crmflow_full` again, then measures dispatch against a local mock provider.
Stage times come from the Dagster event log (STEP_START to STEP_SUCCESS). CPU time and peak RSS come
from a sampler thread reading /proc every 0.25 s for this process and its children (dbt runs as a
child), windowed by each step's start and end. Each `## N users` section is written by one run of
the script, between its `bench:users=N` markers; the rest of this file is kept as it is.
"""
