"""`crmflow ledger status`: true totals per state, counts per journey/channel/state, the oldest open
row and the `unknown` rows with reasons."""

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from crmflow.errors import CrmflowUserError
from crmflow.journeys.ledger_status import ledger_status
from crmflow.run_holder import held_message, is_lock_conflict
from crmflow.settings import load_settings
from crmflow.warehouse import WarehouseConnectionError, open_warehouse
from crmflow.warehouse.duckdb import FILE_OPEN_ERRORS
from orchestration.user_errors import existing_warehouse

app = typer.Typer(help="The send ledger.", no_args_is_help=True)
UNKNOWN_SHOWN = 100


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Totals per state; counts per journey, channel and state; the oldest open row; rows in state
    unknown (the first 100 listed; the total is exact)."""
    target = existing_warehouse(load_settings().warehouse)
    try:
        with open_warehouse(target) as con:
            report = ledger_status(con, UNKNOWN_SHOWN, now=datetime.now(UTC))
    except (*FILE_OPEN_ERRORS, WarehouseConnectionError) as error:
        if target.kind == "duckdb" and is_lock_conflict(error):
            raise CrmflowUserError(held_message(target.path, "`crmflow ledger status`")) from None
        raise
    if as_json:
        typer.echo(json.dumps(report, default=str, indent=2))
        return
    typer.echo("totals: " + (", ".join(f"{state} {n}" for state, n in report["totals"].items()) or "no rows"))
    oldest = report["oldest_open"]
    if oldest:
        typer.echo(f"oldest open row: {oldest['message_key'][:16]}… {oldest['journey_id']} {oldest['channel']} "
                   f"{oldest['state']} since {oldest['planned_at']}")
    if report["sending_past_lease"]:
        typer.echo(f"sending past their lease: {report['sending_past_lease']} (the next dispatch reconciles them)")
    typer.echo(f"{'journey':<24} {'channel':<8} {'state':<11} {'count':>8}")
    for row in report["counts"]:
        typer.echo(f"{row['journey_id']:<24} {row['channel']:<8} {row['state']:<11} {row['count']:>8}")
    shown = len(report["unknown"])
    total = report["unknown_total"]
    typer.echo(f"unknown rows: {total}" + (f" (the oldest {shown} listed)" if shown < total else ""))
    for row in report["unknown"]:
        typer.echo(f"  {row['message_key'][:16]}… {row['journey_id']}/{row['step_id']} {row['channel']} "
                   f"user={row['user_id']} attempts={row['attempts']}: {row['reason']}")
