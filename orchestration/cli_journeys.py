"""`crmflow journeys ...`: validate, list and preview marketer journeys."""

import json
from pathlib import Path
from typing import Annotated

import typer

from crmflow.errors import CrmflowUserError
from crmflow.journeys.loader import journey_files
from crmflow.journeys.runner import JourneyConfig
from crmflow.settings import load_settings, parse_as_of
from crmflow.warehouse import open_warehouse
from orchestration.user_errors import existing_warehouse

app = typer.Typer(help="Marketer journeys (marketing/journeys/*.yaml).", no_args_is_help=True)


def _config() -> JourneyConfig:
    return JourneyConfig(load_settings().marketing_dir)


@app.command()
def validate(path: Annotated[Path | None, typer.Argument(help="A journey file or folder.")] = None) -> None:
    """Check journey files; print file:line: field: reason for every error (exit 1 if any) and
    warning (exit code unchanged)."""
    config = _config()
    target = path or config.journeys_dir
    files = journey_files(target)
    if not files:
        typer.echo(f"no journey files in {target}", err=True)
        raise typer.Exit(1)
    failed = 0
    for file in files:
        loaded = config.load(file)
        for warning in loaded.warnings:  # suspicious, never fails (e.g. a tag that may be a manual tag)
            typer.echo(f"warning: {warning}", err=True)
        if loaded.ok:
            typer.echo(f"ok      {file}")
        else:
            failed += 1
            for error in loaded.errors:
                typer.echo(str(error), err=True)
    typer.echo(f"{len(files) - failed} valid, {failed} invalid")
    raise typer.Exit(1 if failed else 0)


@app.command("list")
def list_journeys() -> None:
    """One line per journey file: id, enabled, priority, trigger, steps, owner (or INVALID)."""
    config = _config()
    for file in journey_files(config.journeys_dir):
        loaded = config.load(file)
        j = loaded.journey
        if j is None:
            typer.echo(f"{loaded.key:<24} INVALID ({len(loaded.errors)} error(s); run `crmflow journeys validate`)")
            continue
        typer.echo(f"{j.id:<24} {'enabled ' if j.enabled else 'disabled'} prio={j.priority:<4} "
                   f"trigger={j.trigger.type:<10} steps={len(j.steps):<3} owner={j.owner}")


@app.command()
def preview(
    journey_id: Annotated[str, typer.Argument(help="Journey id (file name without .yaml).")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 as-of time; default now.")] = None,
    samples: Annotated[int, typer.Option(min=0, help="Sample messages to render.")] = 3,
) -> None:
    """Who would enter, counts per step and variant, sample messages — nothing is written or sent."""
    from crmflow.journeys.preview import preview_journey

    moment = parse_as_of(as_of)
    config = _config()
    file = next((f for f in journey_files(config.journeys_dir) if f.stem == journey_id), None)
    if file is None:
        known = ", ".join(sorted(f.stem for f in journey_files(config.journeys_dir))) or "none"
        raise CrmflowUserError(f"no journey {journey_id!r} in {config.journeys_dir} (known: {known})")
    with open_warehouse(existing_warehouse(load_settings().warehouse)) as con:
        loaded = config.load(file, con)
        if not loaded.ok or loaded.journey is None:
            typer.echo(loaded.error_text(), err=True)
            raise typer.Exit(1)
        result = preview_journey(con, loaded.journey, moment, config.policies().default_timezone, samples)
    typer.echo(json.dumps({"journey": journey_id, "as_of": result.report.as_of.isoformat(),
                           **result.report.metadata(), "samples": result.samples},
                          ensure_ascii=False, indent=2, default=str))
