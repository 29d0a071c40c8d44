"""build_channels: the channel objects for one environment, from channels.yaml + environment variables.

A channel whose provider lacks credentials falls back to the outbox file, with a warning that names
the missing variables (never their values), so demo runs work offline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from connectors.channels.base import Channel
from connectors.channels.config import (
    AnyChannelConfig,
    ChannelsConfig,
    FcmConfig,
    SendGridConfig,
    TwilioConfig,
    WebhookConfig,
)
from connectors.channels.fcm import DEFAULT_API_BASE as FCM_DEFAULT_BASE
from connectors.channels.fcm import FcmChannel
from connectors.channels.fcm_auth import ServiceAccountToken, service_account_project_id
from connectors.channels.outbox import OutboxChannel
from connectors.channels.sendgrid import DEFAULT_HOST as SENDGRID_DEFAULT_HOST
from connectors.channels.sendgrid import SendGridChannel
from connectors.channels.twilio import DEFAULT_API_BASE as TWILIO_DEFAULT_BASE
from connectors.channels.twilio import TwilioChannel
from connectors.channels.webhook import WebhookChannel

log = logging.getLogger("crmflow.channels")

# Every environment variable the channels read; values are secrets unless noted.
CHANNEL_ENV_VARS = (
    "SENDGRID_API_KEY", "SENDGRID_HOST",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID", "TWILIO_API_BASE",
    "FCM_PROJECT_ID", "FCM_ACCESS_TOKEN", "FCM_API_BASE",
    "GOOGLE_APPLICATION_CREDENTIALS",  # a path, not a secret; the key file it names is one
    "CRMFLOW_WEBHOOK_SECRET", "CRMFLOW_WEBHOOK_URL",
)


@dataclass(frozen=True)
class ChannelPlan:
    channel: str
    configured: str  # provider named in channels.yaml
    effective: str  # provider actually used (outbox when credentials are missing)
    missing: tuple[str, ...]  # names of missing environment variables


def missing_credentials(config: AnyChannelConfig, environ: Mapping[str, str]) -> tuple[str, ...]:
    def absent(*names: str) -> list[str]:
        return [n for n in names if not environ.get(n)]

    if isinstance(config, SendGridConfig):
        return tuple(absent("SENDGRID_API_KEY"))
    if isinstance(config, TwilioConfig):
        missing = absent("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
        has_sender = config.from_number or config.messaging_service_sid or environ.get("TWILIO_FROM") \
            or environ.get("TWILIO_MESSAGING_SERVICE_SID")
        if not has_sender:
            missing.append("TWILIO_FROM|TWILIO_MESSAGING_SERVICE_SID")
        return tuple(missing)
    if isinstance(config, FcmConfig):
        missing = [] if fcm_project_id(environ) else ["FCM_PROJECT_ID"]
        if not (environ.get("FCM_ACCESS_TOKEN") or environ.get("GOOGLE_APPLICATION_CREDENTIALS")):
            missing.append("FCM_ACCESS_TOKEN|GOOGLE_APPLICATION_CREDENTIALS")
        return tuple(missing)
    if isinstance(config, WebhookConfig):
        missing = absent("CRMFLOW_WEBHOOK_SECRET")
        if not (config.url or environ.get("CRMFLOW_WEBHOOK_URL")):
            missing.append("CRMFLOW_WEBHOOK_URL")
        return tuple(missing)
    return ()


def fcm_project_id(environ: Mapping[str, str]) -> str | None:
    """FCM_PROJECT_ID, else the project_id of the service-account file (a bad file raises
    ServiceAccountFileError naming it: a misconfiguration, not a reason to fall back silently)."""
    if environ.get("FCM_PROJECT_ID"):
        return environ["FCM_PROJECT_ID"]
    path = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    return service_account_project_id(path) if path else None


def plan_channels(config: ChannelsConfig, env: str, environ: Mapping[str, str] | None = None) -> list[ChannelPlan]:
    environ = os.environ if environ is None else environ
    plans = []
    for name, channel_config in config.for_environment(env).items():
        missing = missing_credentials(channel_config, environ)
        effective = "outbox" if missing else channel_config.provider
        plans.append(ChannelPlan(name, channel_config.provider, effective, missing))
    return plans


def build_channel(
    name: str,
    config: AnyChannelConfig,
    environ: Mapping[str, str],
    outbox_dir: str | Path,
    sleep: Callable[[float], None] | None = None,
) -> Channel:
    extra = {"sleep": sleep} if sleep is not None else {}
    missing = missing_credentials(config, environ)
    if config.provider == "outbox":
        return OutboxChannel(name, outbox_dir)
    if missing:
        log.warning("channel %s: provider %s has no credentials (missing %s); using the outbox",
                    name, config.provider, ", ".join(missing))
        return OutboxChannel(name, outbox_dir)
    if isinstance(config, SendGridConfig):
        return SendGridChannel(config, api_key=environ["SENDGRID_API_KEY"],
                               host=environ.get("SENDGRID_HOST") or SENDGRID_DEFAULT_HOST, **extra)
    if isinstance(config, TwilioConfig):
        return TwilioChannel(
            config, account_sid=environ["TWILIO_ACCOUNT_SID"], auth_token=environ["TWILIO_AUTH_TOKEN"],
            from_number=config.from_number or environ.get("TWILIO_FROM"),
            messaging_service_sid=config.messaging_service_sid or environ.get("TWILIO_MESSAGING_SERVICE_SID"),
            api_base=environ.get("TWILIO_API_BASE") or TWILIO_DEFAULT_BASE, **extra)
    if isinstance(config, FcmConfig):
        # FCM_ACCESS_TOKEN wins (explicit beats ambient); otherwise mint from the service account.
        token = environ.get("FCM_ACCESS_TOKEN") or ServiceAccountToken(
            environ["GOOGLE_APPLICATION_CREDENTIALS"], timeout_s=config.timeout_s)
        return FcmChannel(config, project_id=str(fcm_project_id(environ)), access_token=token,
                          api_base=environ.get("FCM_API_BASE") or FCM_DEFAULT_BASE, **extra)
    if isinstance(config, WebhookConfig):
        return WebhookChannel(config, url=config.url or environ["CRMFLOW_WEBHOOK_URL"],
                              secret=environ["CRMFLOW_WEBHOOK_SECRET"], **extra)
    raise TypeError(f"channel {name}: unknown provider config {type(config).__name__}")


def build_channels(
    config: ChannelsConfig,
    env: str,
    outbox_dir: str | Path,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Channel]:
    """One Channel per channel name for environment `env` (e.g. CRMFLOW_ENV)."""
    environ = os.environ if environ is None else environ
    return {name: build_channel(name, channel_config, environ, outbox_dir, sleep)
            for name, channel_config in config.for_environment(env).items()}


def current_environment(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("CRMFLOW_ENV") or "dev"
