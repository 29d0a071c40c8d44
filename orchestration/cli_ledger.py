"""`crmflow ledger status`: counts per state/channel/journey and the `unknown` rows with reasons."""

import json
from typing import Annotated

import typer

from crmflow.journeys.ledger_status import ledger_status
from crmflow.settings import load_settings
from crmflow.warehouse import open_warehouse
from orchestration.user_errors import existing_warehouse

app = typer.Typer(help="The send ledger.", no_args_is_help=True)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Counts per state, channel and journey; lists rows in state unknown (never resent)."""
    with open_warehouse(existing_warehouse(load_settings().warehouse)) as con:
        report = ledger_status(con)
    if as_json:
        typer.echo(json.dumps(report, default=str, indent=2))
        return
    typer.echo(f"{'journey':<24} {'channel':<8} {'state':<11} {'count':>8}")
    for row in report["counts"]:
        typer.echo(f"{row['journey_id']:<24} {row['channel']:<8} {row['state']:<11} {row['count']:>8}")
    typer.echo(f"unknown rows: {len(report['unknown'])}")
    for row in report["unknown"]:
        typer.echo(f"  {row['message_key'][:16]}… {row['journey_id']}/{row['step_id']} {row['channel']} "
                   f"user={row['user_id']} attempts={row['attempts']}: {row['reason']}")
