"""The `crmflow` command line. Sub-command groups live in orchestration/cli_*.py and are added here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from crmflow.errors import CrmflowUserError
from crmflow.settings import DBT_PROJECT_DIR, load_settings, parse_as_of
from orchestration.user_errors import CrmflowGroup, debug_enabled, enable_debug, writable_folder

app = typer.Typer(help="crmflow: warehouse-native CRM and marketing automation.", no_args_is_help=True,
                  cls=CrmflowGroup)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"crmflow {version('crmflow')}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the crmflow version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also CRMFLOW_DEBUG=1); errors "
                                        "are otherwise one line: `crmflow: error: ...`, exit 2.")] = False,
) -> None:
    """crmflow: warehouse-native CRM and marketing automation."""
    if debug:
        enable_debug()

from orchestration.cli_channels import app as channels_app  # noqa: E402
from orchestration.cli_dispatch import dispatch_command  # noqa: E402
from orchestration.cli_journeys import app as journeys_app  # noqa: E402
from orchestration.cli_ledger import app as ledger_app  # noqa: E402
from orchestration.cli_privacy import app as privacy_app  # noqa: E402
from orchestration.cli_report import app as report_app  # noqa: E402
from orchestration.cli_tags import app as tags_app  # noqa: E402
from orchestration.cli_webhooks import app as webhooks_app  # noqa: E402

app.add_typer(journeys_app, name="journeys")
app.add_typer(ledger_app, name="ledger")
app.add_typer(channels_app, name="channels")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(tags_app, name="tags")
app.add_typer(privacy_app, name="privacy")
app.add_typer(report_app, name="report")
app.command("dispatch")(dispatch_command)

DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


def prepare_dbt_manifest(force: bool = False) -> Path:
    """`dbt parse` so the Dagster definitions can load the manifest (build time, not import): when
    forced, when there is none, or when it was parsed for another target (engine, database) and
    would carry the other warehouse's relation names (orchestration/dbt_manifest.py)."""
    from orchestration.dbt_env import dbt_target_env
    from orchestration.dbt_manifest import prepare_manifest

    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    env = {**_dbt_env(), **dbt_target_env(load_settings().dbt_target)}
    prepare_manifest(manifest, env, _dbt_parse, force=force)
    return manifest


def _dbt_parse(env: Mapping[str, str]) -> None:
    subprocess.run(
        [DBT_EXECUTABLE, "parse", "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir",
         str(DBT_PROJECT_DIR), "--quiet"],
        check=True, env=dict(env), cwd=DBT_PROJECT_DIR,
    )


def _dbt_env() -> dict[str, str]:
    import os

    return {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}


@app.command()
def generate(
    users: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of history.")] = 365,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD); default today (UTC).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 42,
    out: Annotated[Path | None, typer.Option(help="Landing folder; default CRMFLOW_LANDING_DIR.")] = None,
    dirty_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of deliberately bad rows.")] = 0.01,
    sources: Annotated[str, typer.Option(
        help="Comma-separated kinds to write, e.g. orders (an orders-only shop).")] = "events,registrations,orders",
    order_items: Annotated[bool, typer.Option(help="Write order items (--no-order-items: amounts only).")] = True,
) -> None:
    """Write realistic sample landing files (events, registrations, orders)."""
    from crmflow.generator import SOURCES, GeneratorConfig, generate_landing

    kinds = tuple(k.strip() for k in sources.split(",") if k.strip())
    if not kinds or set(kinds) - set(SOURCES):
        raise CrmflowUserError(f"--sources {sources!r}: use a comma-separated list of {', '.join(SOURCES)}")
    out_dir = writable_folder(out or load_settings().landing_dir, "--out" if out else "CRMFLOW_LANDING_DIR")
    end_day = _parse_day(end, "--end") if end else datetime.now(UTC).date()
    started = time.perf_counter()
    counts = generate_landing(
        GeneratorConfig(users=users, days=days, end=end_day, seed=seed, dirty_fraction=dirty_fraction,
                        sources=kinds, order_items=order_items),
        out_dir,
    )
    elapsed = time.perf_counter() - started
    typer.echo(f"generated in {elapsed:.1f}s into {out_dir}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def _parse_day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CrmflowUserError(f"{option} {value!r} is not a day: use YYYY-MM-DD, e.g. 2026-11-22") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@app.command()
def run(
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 as-of time; default now.")] = None,
    log_level: Annotated[str | None, typer.Option(
        help="Dagster console log level (DEBUG shows every event); default ERROR, INFO with --verbose.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="dbt's node lines and Dagster's log lines, "
                                          "instead of one line per step.")] = False,
    analytics_only: Annotated[bool, typer.Option(
        "--analytics-only", help="Only tag rules, the dbt models and the intelligence outputs (job crmflow_analytics): "
        "no ingestion, no journey, task or banner state, so also as of a time before the latest full run.")] = False,
) -> None:
    """Materialise the whole asset graph once, as of the given time (a run in the Dagster instance)."""
    # Quiet: warnings are the progress logger's one-line `warn` lines, so the console shows errors only.
    level = (log_level or ("INFO" if verbose else "ERROR")).upper()
    if level not in LOG_LEVELS:
        raise CrmflowUserError(f"--log-level {log_level!r} is not a level: use one of {', '.join(LOG_LEVELS)}")
    result = run_pipeline(parse_as_of(as_of), log_level=level, verbose=verbose,
                          job="crmflow_analytics" if analytics_only else "crmflow_full")
    raise typer.Exit(0 if result else 1)


def run_pipeline(as_of: datetime, log_level: str = "ERROR", summary: bool = True, verbose: bool = False,
                 tags: dict[str, str] | None = None, job: str = "crmflow_full") -> bool:
    """One run of `job` (crmflow_full or crmflow_analytics) as of `as_of`, recorded in the Dagster instance."""
    from crmflow.warehouse.spark import check_spark_ready
    from orchestration.runs import check_no_run_in_the_way, dagster_instance

    settings = load_settings()  # a Spark warehouse without CRMFLOW_STATE: one line (exit 2)
    target = settings.warehouse
    if settings.spark is not None:
        check_spark_ready(settings.spark)  # no java, no pyspark: one line, before any step
    instance = dagster_instance()
    # Before any step: another run on this DuckDB file, an unreachable warehouse: one line (exit 2).
    check_no_run_in_the_way(instance, target, settings.spark)
    applied = migrate_warehouse(echo=False)
    if job == "crmflow_full":
        # Never back over cumulative state (ledger, enrolments, tasks, histories): one line, exit 2.
        from crmflow.cumulative_state import refuse_going_back_on

        refuse_going_back_on(target, as_of)
    # Re-parse every time: partial parsing makes it cheap, and a stale manifest would silently leave
    # new or changed models out of the run.
    prepare_dbt_manifest(force=True)
    from orchestration.progress import first_error_line, set_quiet_dbt
    from orchestration.runs import execute

    started = time.perf_counter()
    typer.echo(f"crmflow run as of {as_of.isoformat()}" + (" (analytics only)" if job != "crmflow_full" else "")
               + (f" (warehouse: applied migrations {', '.join(map(str, applied))})" if applied else ""))
    # A failed step is not a user mistake: it is reported, with its error's first line; the
    # traceback (Dagster's console logger prints it) only with --debug.
    console = {"log_level": log_level.upper(), "tracebacks": debug_enabled()}
    set_quiet_dbt(not verbose)
    try:
        with execute(job, as_of, target, instance=instance, tags=tags, spark=settings.spark, run_config={
                "loggers": {"console": {"config": console}, "progress": {"config": {"notes": not verbose}}}}) as result:
            success, run_id = result.success, result.run_id
            failures = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
            stopped = gated_journeys(result.all_events)
    finally:
        set_quiet_dbt(False)
    elapsed = time.perf_counter() - started
    for event in failures:
        typer.echo(f"step failed: {event.step_key}: {first_error_line(event.event_specific_data.error)}", err=True)
    if stopped:
        typer.echo(gated_journeys_line(stopped))
    typer.echo(f"run {run_id[:8]} {'succeeded' if success else 'FAILED'} in {elapsed:.1f}s "
               f"(Dagster instance {instance.root_directory})")
    if summary:
        if verbose:
            from crmflow.summary import print_summary

            print_summary(target)
        else:
            print_stage_counts(target)
    return success


def gated_journeys(events) -> dict[str, list[str]]:
    """Governance state -> journey ids whose journey_approved check failed (they sent nothing)."""
    stopped: dict[str, list[str]] = {}
    for event in events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        check = event.event_specific_data
        if check.check_name == "journey_approved" and not check.passed:
            state = check.metadata.get("state")
            state = str(state.value) if state is not None else "invalid"
            stopped.setdefault(state, []).append(check.asset_key.to_user_string().removeprefix("journey_"))
    return stopped


def gated_journeys_line(stopped: dict[str, list[str]]) -> str:
    """One line for every journey the governance gate stopped, and the command that lets each run."""
    commands = {"not_approved": "crmflow journeys approve <id> --as <person>",
                "disabled": "crmflow journeys enable <id> --as <person>"}
    parts = [f"{state.replace('_', ' ')}: {', '.join(sorted(ids))}"
             + (f" (`{commands[state]}`)" if state in commands else "") for state, ids in sorted(stopped.items())]
    return f"journeys that enrol nobody and send nothing: {'; '.join(parts)}"


def print_stage_counts(target) -> None:
    """Rows per stage, one line per stage (the table per table is `crmflow run --verbose`)."""
    from crmflow.summary import stage_counts

    by_stage: dict[str, list[str]] = {}
    for stage, table, rows in stage_counts(target):
        by_stage.setdefault(stage, []).append(f"{table} {rows:,}")
    for stage, tables in by_stage.items():
        typer.echo(f"{stage:<7} " + ", ".join(tables))


@app.command()
def backfill(
    from_day: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")],
    to_day: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="dbt's node lines and Dagster's logs.")] = False,
) -> None:
    """Recompute each day from --from to --to in order, each as of that day's daily-schedule tick
    (02:00 in CRMFLOW_TIMEZONE): one run per day in the Dagster instance, tagged crmflow/backfill."""
    from orchestration.schedules import daily_tick

    first, last = _parse_day(from_day, "--from"), _parse_day(to_day, "--to")
    if last < first:
        raise CrmflowUserError(f"--to {to_day} is before --from {from_day}")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    tag = {"crmflow/backfill": f"{first.isoformat()}..{last.isoformat()}"}
    for number, day in enumerate(days, start=1):
        typer.echo(f"backfill day {number}/{len(days)}: {day.isoformat()}")
        if not run_pipeline(daily_tick(day, load_settings().timezone), log_level="INFO" if verbose else "ERROR",
                            summary=day == last, verbose=verbose, tags=tag):
            typer.echo(f"backfill stopped at {day.isoformat()}: its run failed; later days were not run "
                       f"(crmflow backfill --from {day.isoformat()} --to {last.isoformat()} to go on)", err=True)
            raise typer.Exit(1)


def migrate_warehouse(echo: bool = True) -> list[int]:
    """Open CRMFLOW_WAREHOUSE once and apply the migrations it lacks (the versions applied now;
    echo: say so in a line of its own, else the caller does)."""
    from crmflow.warehouse import apply_migrations, open_warehouse

    target = load_settings().warehouse
    with open_warehouse(target) as warehouse:
        applied = apply_migrations(warehouse)
    if applied and echo:
        typer.echo(f"warehouse {target.redacted()}: applied migrations {', '.join(map(str, applied))}")
    return applied


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=1, help="Number of sample customers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    catch_up_weeks: Annotated[int, typer.Option(min=0, help="Weekly runs before today, so journeys have "
                                                "sends and conversions to measure.")] = 2,
) -> None:
    """Generate a year of sample data and run the pipeline on embedded DuckDB, then write the report.

    The demo first runs as of a few weeks ago, then weekly up to now, like a scheduled deployment
    catching up: journeys enrol and send in the early runs, and the later runs see who converted.
    Each run's data lands just before it (one world, delivered up to the run's day): ingestion
    quarantines events later than the run's as-of, as it would a device clock far ahead.
    """
    from crmflow.generator import GeneratorConfig, generate_landing

    settings = load_settings()
    now = parse_as_of(None)
    as_ofs = [now - timedelta(weeks=weeks) for weeks in range(catch_up_weeks, -1, -1)]
    # Governance (docs/journeys.md): the shipped journey versions are approved as a visible step; an
    # edited journey then sends nothing until another approver approves it.
    from crmflow.journeys.runner import JourneyConfig
    from crmflow.warehouse import apply_migrations, open_warehouse
    from orchestration.cli_journeys import approve_for_demo

    with open_warehouse(settings.warehouse) as wh:
        apply_migrations(wh)
        for line in approve_for_demo(JourneyConfig(settings.marketing_dir), wh, now):
            typer.echo(line)
    ok = True
    delivered_until: date | None = None
    for as_of in as_ofs:
        day = as_of.date()
        generate_landing(GeneratorConfig(users=users, days=365, end=now.date(), seed=seed, dirty_fraction=0.01,
                                         emit_since=delivered_until and delivered_until + timedelta(days=1),
                                         emit_until=day), settings.landing_dir)
        delivered_until = day
        ok = run_pipeline(as_of, summary=as_of == now) and ok
    # Also after a failed run: the report shows what exists and says "no data yet" for the rest.
    from orchestration.cli_report import report

    report(out=None, as_of=now.isoformat())
    raise typer.Exit(0 if ok else 1)


@app.command("prepare")
def prepare() -> None:
    """Parse the dbt project (writes target/manifest.json for the Dagster definitions)."""
    path = prepare_dbt_manifest(force=True)
    typer.echo(json.dumps({"manifest": str(path)}))


def main(argv: list[str] | None = None) -> None:
    """The `crmflow` entry point: user mistakes are one line on stderr and exit 2 (CrmflowGroup)."""
    app(args=argv, prog_name="crmflow")


if __name__ == "__main__":
    main()
