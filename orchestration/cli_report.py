"""`crmflow report [--out FILE] [--as-of T]`: rebuild the measurement tables (the dbt measurement models
and the Python statistics) and write the HTML report."""

import time
from pathlib import Path
from typing import Annotated

import typer

from crmflow.report.build import default_report_path, measure_and_report
from crmflow.settings import load_settings, parse_as_of
from orchestration.dbt_measurement import measurement_models_runner
from orchestration.user_errors import existing_warehouse, writable_file

app = typer.Typer(help="The HTML report (measurement: attribution, uplift, A/B results).")


@app.callback(invoke_without_command=True)
def report(
    out: Annotated[Path | None, typer.Option("--out", help="HTML file; default <CRMFLOW_EXPORT_DIR>/report.html.")
                   ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 as-of time; default now.")] = None,
) -> None:
    """Measure journeys (attribution, trend, uplift, A/B) as of T and write the self-contained report."""
    settings = load_settings()
    moment = parse_as_of(as_of)
    existing_warehouse(settings.warehouse)
    target = writable_file(out or default_report_path(settings.export_dir), "--out" if out else "the report")
    started = time.perf_counter()
    typer.echo(f"report as of {moment.isoformat()} from {settings.warehouse}")
    measured, outcome = measure_and_report(settings.warehouse, settings.journeys_dir, target, moment,
                                           measurement_models_runner(settings.warehouse, settings.timezone))
    counts = measured.counts
    typer.echo(f"measurement: {counts['messages_sent']:,} messages sent, {counts['orders_attributed']:,} orders "
               f"attributed, {counts['journeys_with_uplift']} journeys with enough data for uplift, "
               f"{counts['ab_variants']} A/B variants")
    empty = sorted(k for k, frame in outcome.data.frames.items() if frame is None)
    typer.echo(f"report: {outcome.charts} charts" + (f", no data yet for {', '.join(empty)}" if empty else ""))
    typer.echo(f"report written to {outcome.path} in {time.perf_counter() - started:.1f}s")
