"""`crmflow channels list|check`: which provider each channel uses, and whether its credentials and
endpoint work (a harmless authenticated GET/HEAD or FCM validate_only; never a real message)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from connectors.channels.config import ChannelsConfig, load_channels_config
from connectors.channels.factory import build_channels, current_environment, plan_channels
from connectors.channels.fcm_auth import ServiceAccountFileError
from crmflow.errors import CrmflowUserError
from crmflow.settings import load_settings

app = typer.Typer(help="Delivery channels (email, SMS, push, webhook).", no_args_is_help=True)

EnvOption = Annotated[str | None, typer.Option("--env", help="channels.yaml environment; default CRMFLOW_ENV or dev.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="Default <marketing>/channels.yaml.")]


def _config_path(config: Path | None) -> Path:
    return config or load_settings().marketing_dir / "channels.yaml"


def _environment(env: str | None, config: ChannelsConfig, path: Path) -> str:
    """--env, else CRMFLOW_ENV, else dev; it must be an environment of channels.yaml."""
    environment = env or current_environment()
    if environment not in config.environments:
        source = "--env" if env else "CRMFLOW_ENV" if os.environ.get("CRMFLOW_ENV") else "the default environment"
        raise CrmflowUserError(f"{source} {environment!r} is not an environment of {path} "
                               f"(known: {', '.join(sorted(config.environments))})")
    return environment


@app.command("list")
def list_channels(env: EnvOption = None, config: ConfigOption = None) -> None:
    """Show configured and effective provider per channel (names of missing variables, no values)."""
    path = _config_path(config)
    parsed = load_channels_config(path)
    environment = _environment(env, parsed, path)
    try:
        plans = plan_channels(parsed, environment)
    except ServiceAccountFileError as exc:
        typer.echo(f"FAIL {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"environment: {environment}")
    for plan in plans:
        note = f"  (missing: {', '.join(plan.missing)})" if plan.missing else ""
        typer.echo(f"{plan.channel:8} configured={plan.configured:9} effective={plan.effective}{note}")


@app.command("check")
def check_channels(env: EnvOption = None, config: ConfigOption = None) -> None:
    """Verify credentials are present and each provider endpoint answers; exit 1 on any failure."""
    path = _config_path(config)
    parsed = load_channels_config(path)
    environment = _environment(env, parsed, path)
    try:
        plans = {p.channel: p for p in plan_channels(parsed, environment)}
        channels = build_channels(parsed, environment, load_settings().outbox_dir, environ=os.environ)
    except ServiceAccountFileError as exc:  # names the file and field, never its content
        typer.echo(f"FAIL {exc}")
        raise typer.Exit(1) from None
    failures = 0
    for name, channel in channels.items():
        plan = plans[name]
        if plan.configured == "outbox":
            typer.echo(f"{name:8} outbox: OK (writes files, nothing to check)")
            continue
        if plan.missing:
            failures += 1
            typer.echo(f"{name:8} {plan.configured}: FAIL missing {', '.join(plan.missing)}")
            continue
        ok, detail = channel.check()  # type: ignore[attr-defined]
        detail = f"[{_fcm_credential_source()}] {detail}" if plan.configured == "fcm" else detail
        failures += 0 if ok else 1
        typer.echo(f"{name:8} {plan.configured}: {'OK' if ok else 'FAIL'} {detail}")
    raise typer.Exit(1 if failures else 0)


def _fcm_credential_source() -> str:
    """Which FCM credential is in use (names only, never values)."""
    if os.environ.get("FCM_ACCESS_TOKEN"):
        return "token from FCM_ACCESS_TOKEN"
    return "token from service account GOOGLE_APPLICATION_CREDENTIALS"
