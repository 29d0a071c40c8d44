"""`crmflow privacy export|erase <user_id>`: data-subject access and erasure (crmflow/privacy.py)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from crmflow.privacy import erase_person, export_person
from crmflow.settings import load_settings, parse_as_of
from crmflow.warehouse import open_warehouse
from orchestration.user_errors import existing_warehouse, writable_file

app = typer.Typer(help="Data-subject requests: export or erase everything held about a person.",
                  no_args_is_help=True)


@app.command("export")
def export(
    user_id: Annotated[str, typer.Argument(help="The person's user_id.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 time stamped on the export.")] = None,
) -> None:
    """Every row about the person (raw, quarantine, marts, ledger, journeys, models, tasks and their
    outcomes, export files, outbox messages)."""
    settings = load_settings()
    moment = parse_as_of(as_of)
    if out is not None:
        writable_file(out, "--out")
    with open_warehouse(existing_warehouse(settings.warehouse)) as con:
        data = export_person(con, user_id, moment, settings.export_dir, settings.outbox_dir)
    text = json.dumps(data, default=str, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    rows = sum(len(v) for v in data["tables"].values())
    typer.echo(f"exported {rows} rows from {len(data['tables'])} tables to {out}")


@app.command("erase")
def erase(
    user_id: Annotated[str, typer.Argument(help="The person's user_id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it (without --yes nothing is changed).")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 time recorded for the erasure.")] = None,
) -> None:
    """Pseudonymise/delete the person's data everywhere, suppress their addresses, record the erasure."""
    if not yes:
        typer.echo(f"erasing {user_id} cannot be undone; rerun with --yes", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    moment = parse_as_of(as_of)
    with open_warehouse(existing_warehouse(settings.warehouse)) as con:
        report = erase_person(con, user_id, moment, settings.export_dir, settings.outbox_dir)
    typer.echo(json.dumps(report.as_dict(), indent=2))
