"""`crmflow webhooks serve`: receive SendGrid / Twilio webhooks, verify, store envelopes in landing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from connectors.delivery.receiver import ReceiverConfig, WebhookReceiver
from crmflow.settings import load_settings
from orchestration.user_errors import listen_error, writable_folder

app = typer.Typer(help="Provider webhooks (delivery events).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Bind address; keep 127.0.0.1 behind a TLS proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8787,
    public_url: Annotated[str | None, typer.Option(help="Public base URL the providers call (Twilio signs "
                                                        "it), e.g. https://hooks.example.com.")] = None,
    landing_dir: Annotated[Path | None, typer.Option(help="Default CRMFLOW_LANDING_DIR.")] = None,
) -> None:
    """Serve POST /sendgrid/events, /twilio/status and /twilio/inbound until interrupted.
    Keys from SENDGRID_WEBHOOK_PUBLIC_KEY and TWILIO_AUTH_TOKEN; without a key that provider gets 403."""
    config = ReceiverConfig(
        landing_dir=landing_dir or load_settings().landing_dir,
        public_base_url=public_url,
        sendgrid_public_key=os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY") or None,
        twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
    )
    writable_folder(config.landing_dir, "--landing-dir" if landing_dir else "CRMFLOW_LANDING_DIR")
    try:
        receiver = WebhookReceiver(config, host=host, port=port)
    except OSError as exc:
        raise listen_error(exc, host, port) from None
    configured = [name for name, key in (("sendgrid", config.sendgrid_public_key),
                                         ("twilio", config.twilio_auth_token)) if key]
    typer.echo(f"listening on {receiver.url} (verifying: {', '.join(configured) or 'nothing: all requests get 403'}); "
               f"writing to {config.landing_dir / 'delivery_events'}")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.server.server_close()
