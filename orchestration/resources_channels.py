"""The Dagster resource for delivery-event verification (the channels resource is
orchestration/resources_journeys.py: JourneyChannelsResource).

Secrets arrive as dg.EnvVar (never plain strings in code or run config). An unset variable is not
passed at all, so the resource sees None (docs/channels.md, "delivery events").
"""

import os

import dagster as dg

from crmflow.delivery_events import DeliveryKeys

_DELIVERY_SECRETS = {"sendgrid_public_key": "SENDGRID_WEBHOOK_PUBLIC_KEY", "twilio_auth_token": "TWILIO_AUTH_TOKEN"}


class DeliveryVerificationResource(dg.ConfigurableResource):
    """Keys that verify provider webhooks again when their envelopes are loaded."""

    sendgrid_public_key: str | None = None
    twilio_auth_token: str | None = None

    def delivery_keys(self) -> DeliveryKeys:
        return DeliveryKeys(self.sendgrid_public_key, self.twilio_auth_token)


def _env_vars(mapping: dict[str, str]) -> dict[str, dg.EnvVar]:
    return {field: dg.EnvVar(env) for field, env in mapping.items() if os.environ.get(env)}


def delivery_verification_from_env() -> DeliveryVerificationResource:
    return DeliveryVerificationResource(**_env_vars(_DELIVERY_SECRETS))
