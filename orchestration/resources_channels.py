"""Dagster resources for the channels and for delivery-event verification.

Secrets arrive as dg.EnvVar (never plain strings in code or run config). An unset variable is not
passed at all, so the resource sees None and the channel falls back to the outbox: `dagster dev` and
the demo keep working offline.
"""

import os
from pathlib import Path

import dagster as dg

from connectors.channels.base import Channel
from connectors.channels.config import load_channels_config
from connectors.channels.factory import build_channels
from crmflow.delivery_events import DeliveryKeys

# resource field -> environment variable
_CHANNEL_SECRETS = {
    "sendgrid_api_key": "SENDGRID_API_KEY", "sendgrid_host": "SENDGRID_HOST",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID", "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from": "TWILIO_FROM", "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "twilio_api_base": "TWILIO_API_BASE",
    "fcm_project_id": "FCM_PROJECT_ID", "fcm_access_token": "FCM_ACCESS_TOKEN", "fcm_api_base": "FCM_API_BASE",
    "google_application_credentials": "GOOGLE_APPLICATION_CREDENTIALS",  # FCM service-account file path
    "webhook_secret": "CRMFLOW_WEBHOOK_SECRET", "webhook_url": "CRMFLOW_WEBHOOK_URL",
}
_DELIVERY_SECRETS = {"sendgrid_public_key": "SENDGRID_WEBHOOK_PUBLIC_KEY", "twilio_auth_token": "TWILIO_AUTH_TOKEN"}


class ChannelsResource(dg.ConfigurableResource):
    """Builds the channel objects for the environment from marketing/channels.yaml."""

    config_path: str
    environment: str = "dev"
    outbox_dir: str
    sendgrid_api_key: str | None = None
    sendgrid_host: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None
    fcm_project_id: str | None = None
    fcm_access_token: str | None = None
    fcm_api_base: str | None = None
    google_application_credentials: str | None = None
    webhook_secret: str | None = None
    webhook_url: str | None = None

    def environ(self) -> dict[str, str]:
        values = {env: getattr(self, field) for field, env in _CHANNEL_SECRETS.items()}
        return {k: v for k, v in values.items() if v}

    def build(self) -> dict[str, Channel]:
        return build_channels(load_channels_config(self.config_path), self.environment, self.outbox_dir,
                              environ=self.environ())


class DeliveryVerificationResource(dg.ConfigurableResource):
    """Keys that verify provider webhooks again when their envelopes are loaded."""

    sendgrid_public_key: str | None = None
    twilio_auth_token: str | None = None

    def delivery_keys(self) -> DeliveryKeys:
        return DeliveryKeys(self.sendgrid_public_key, self.twilio_auth_token)


def _env_vars(mapping: dict[str, str]) -> dict[str, dg.EnvVar]:
    return {field: dg.EnvVar(env) for field, env in mapping.items() if os.environ.get(env)}


def channels_resource_from_env(marketing_dir: str | Path, outbox_dir: str | Path) -> ChannelsResource:
    return ChannelsResource(config_path=str(Path(marketing_dir) / "channels.yaml"),
                            environment=os.environ.get("CRMFLOW_ENV") or "dev", outbox_dir=str(outbox_dir),
                            **_env_vars(_CHANNEL_SECRETS))


def delivery_verification_from_env() -> DeliveryVerificationResource:
    return DeliveryVerificationResource(**_env_vars(_DELIVERY_SECRETS))
