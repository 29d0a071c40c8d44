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
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except Exception:  # a missing optional package is reported, not fatal
        return "not installed"


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:,.1f} s"


def render_markdown(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    cfg = figures["config"]
    full = figures["full_run"]
    inc = figures.get("incremental_run")
    gen = figures["generate"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {figures['measured_on']} with `bench/run_bench.py --users {cfg['users']}` "
        f"({cfg['days']} days of history ending {cfg['end']}, seed {cfg['seed']}"
        + (f", asset groups {', '.join(cfg['groups'])} only" if cfg.get("groups") else "") + ").",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPU(s) ({m['cpu']}), {m['memory_gib']} GiB RAM, {m['os']}, Python {m['python']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        "- Shared machine: other work ran at the same time, so treat figures as upper bounds.",
        "",
        "## Data",
        "",
        f"- {gen['counts']['users']:,} users, {gen['counts']['event_rows']:,} event lines, "
        f"{gen['counts']['order_rows']:,} order rows, {gen['counts']['registration_rows']:,} registration rows "
        f"({gen['counts']['dirty_rows']:,} deliberately bad rows), {gen['landing_mib']:,.1f} MiB of landing files",
        f"- generated in {_fmt(gen['seconds'])}",
        "",
        "## Full run",
        "",
        "| stage (asset group) | wall time |",
        "|---|---|",
    ]
    for group, seconds in sorted(full["by_group"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {group} | {_fmt(seconds)} |")
    lines += [
        f"| **whole run** | **{_fmt(full['wall_seconds'])}** |",
        "",
        f"- run {'succeeded' if full['success'] else 'FAILED (steps: ' + ', '.join(full['failed_steps']) + ')'}",
        f"- ingest throughput: {full['ingest_rows_per_s']:,.0f} landing rows/s "
        f"({full['landing_rows']:,} rows in {_fmt(full['ingest_seconds'])})",
        f"- DuckDB lower bound (one `count(*)` per source over its landing files): {_fmt(figures['lower_bound']['seconds'])} "
        f"({', '.join(f'{k} {_fmt(v)}' for k, v in figures['lower_bound']['per_source'].items())})",
        f"- full run / lower bound: {full['ratio_to_lower_bound']:,.1f}x",
        f"- Dagster definitions: import {_fmt(figures['definitions']['import_seconds'])}, "
        f"resolve all asset keys {_fmt(figures['definitions']['resolve_seconds'])}",
        f"- peak RSS: this process {figures['peak_rss_mib']['self']:,.0f} MiB, "
        f"largest child (dbt) {figures['peak_rss_mib']['children']:,.0f} MiB",
        "",
    ]
    if inc:
        lines += [
            "## Incremental day",
            "",
            f"One more day of data ({inc['landing_rows']:,} new landing rows in per-day files), then a second run "
            f"as of the next day: **{_fmt(inc['wall_seconds'])}** "
            f"(ingest {_fmt(inc['ingest_seconds'])}); "
            f"{'succeeded' if inc['success'] else 'FAILED (steps: ' + ', '.join(inc['failed_steps']) + ')'}.",
            "",
            "| stage (asset group) | wall time |",
            "|---|---|",
        ]
        for group, seconds in sorted(inc["by_group"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {group} | {_fmt(seconds)} |")
        lines.append("")
    lines += [
        "## Slowest steps (full run)",
        "",
        "| step | wall time | status |",
        "|---|---|---|",
    ]
    for step in sorted(full["steps"], key=lambda s: -s["seconds"])[:10]:
        lines.append(f"| {step['step_key']} | {_fmt(step['seconds'])} | {step['status']} |")
    lines += [
        "",
        "## How to rerun",
        "",
        "```",
        "make bench SCALE=100000          # or: .venv/bin/python bench/run_bench.py --users 100000",
        ".venv/bin/python bench/run_bench.py --users 2000 --out /tmp/bench.md --json /tmp/bench.json",
        "```",
        "",
        "The script generates the users into a temporary landing folder, runs the `crmflow_full` job "
        "in process against a temporary warehouse (as of the day after the generated window), adds one "
        "more day of data and runs again, then writes this file. Stage times come from the Dagster "
        "event log (STEP_START to STEP_SUCCESS); the dbt step is split by dbt's per-model execution "
        "time. Peak RSS is `getrusage` (self, and the largest child, i.e. the dbt subprocess).",
        "",
    ]
    return "\n".join(lines)
