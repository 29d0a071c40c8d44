"""`crmflow dispatch`: send the due planned messages now (what the journey_dispatch step does), with
`--workers N` parallel send workers on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crmflow.errors import CrmflowUserError
from crmflow.run_holder import held_message, holding, is_lock_conflict
from crmflow.settings import load_settings, parse_as_of
from crmflow.warehouse import WarehouseConnectionError
from crmflow.warehouse.duckdb import FILE_OPEN_ERRORS
from orchestration.user_errors import existing_warehouse


def dispatch_command(
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO-8601 as-of time; default now.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Send workers (processes); more than 1 needs "
                                         "PostgreSQL. On DuckDB one worker sends.")] = 1,
) -> None:
    """Claim, send and record the due messages once (policies first), at most once per message key."""
    from crmflow.journeys.dispatch import DispatchLockedError
    from crmflow.journeys.runner import JourneyConfig, dispatch_all
    from crmflow.warehouse import apply_migrations, open_warehouse
    from orchestration.resources_journeys import JourneyChannelsResource

    settings = load_settings()
    target = existing_warehouse(settings.warehouse)
    duckdb_path = Path(target.path) if target.kind == "duckdb" else None
    if duckdb_path is not None and workers > 1:
        typer.echo(f"DuckDB: one dispatch worker (an embedded file has a single writer); --workers {workers} "
                   "applies on PostgreSQL")
        workers = 1
    moment = parse_as_of(as_of)
    channels = JourneyChannelsResource(channels_file=str(settings.marketing_dir / "channels.yaml"),
                                       outbox_dir=str(settings.outbox_dir)).channels()
    try:
        with holding(duckdb_path, "crmflow dispatch"), open_warehouse(target) as wh:
            apply_migrations(wh)
            report = dispatch_all(wh, JourneyConfig(settings.marketing_dir), moment, channels, duckdb_path,
                                  workers=workers)
    except DispatchLockedError as error:
        raise CrmflowUserError(str(error)) from None
    except (*FILE_OPEN_ERRORS, WarehouseConnectionError) as error:
        if duckdb_path is not None and is_lock_conflict(error):
            raise CrmflowUserError(held_message(duckdb_path, "`crmflow dispatch`")) from None
        raise
    if report.held:
        typer.echo(f"dispatch held as of {moment.isoformat()}: {report.held}")
        return
    typer.echo(f"dispatched as of {moment.isoformat()} with {report.workers} worker(s): claimed {report.claimed}, "
               f"sent {report.sent}, failed {report.failed}, unknown {report.unknown}; after a crash: "
               f"{len(report.reconciled_unknown)} unknown, {report.released} released, {report.requeued} requeued; "
               f"settled by events {report.settled}, lost {report.lost}, resent {report.resent}")
    if report.workers_lost:
        typer.echo(f"workers that died before finishing: {', '.join(report.workers_lost)} "
                   "(their in-flight rows are reconciled by the next dispatch)", err=True)
        raise typer.Exit(1)
