"""marketing/channels.yaml: which provider each channel uses per environment, and how it sends.

Parsed with pydantic (extra="forbid"): a typo in the file is an error naming the field, never a
silent default. Secrets are NOT in this file; they come from environment variables (see factory.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SendingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Provider API calls per second (email: one call carries up to batch_size messages).
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    burst: int = Field(default=1, ge=1)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    max_attempts: int = Field(default=4, ge=1, le=20)
    # Retry after a read timeout / dropped connection, when the provider may already have accepted
    # the message: at-least-once (possible duplicate) instead of the default at-most-once (the
    # message is recorded `unknown` and settled by its delivery event; docs/reliability.md).
    retry_on_timeout: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=120.0, ge=0)


class OutboxConfig(SendingPolicy):
    provider: Literal["outbox"] = "outbox"


class SendGridConfig(SendingPolicy):
    provider: Literal["sendgrid"]
    from_email: str
    from_name: str | None = None
    reply_to: str | None = None
    sandbox: bool = False
    unsubscribe_group_id: int | None = None  # asm.group_id
    # List-Unsubscribe header value; {message_key} and {user_id} are filled in per recipient.
    list_unsubscribe: str | None = None
    categories: list[str] = Field(default_factory=list)  # added to the journey/step categories
    batch_size: int = Field(default=1000, ge=1, le=1000)  # personalizations per request


class TwilioConfig(SendingPolicy):
    provider: Literal["twilio"]
    from_number: str | None = None  # else env TWILIO_FROM
    messaging_service_sid: str | None = None  # else env TWILIO_MESSAGING_SERVICE_SID
    status_callback_url: str | None = None  # e.g. https://hooks.example.com/twilio/status


class FcmConfig(SendingPolicy):
    provider: Literal["fcm"]
    validate_only: bool = False  # FCM dry run: validated by FCM, never delivered


class WebhookConfig(SendingPolicy):
    provider: Literal["webhook"]
    url: str | None = None  # else env CRMFLOW_WEBHOOK_URL


EmailConfig = Annotated[OutboxConfig | SendGridConfig, Field(discriminator="provider")]
SmsConfig = Annotated[OutboxConfig | TwilioConfig, Field(discriminator="provider")]
PushConfig = Annotated[OutboxConfig | FcmConfig, Field(discriminator="provider")]
WebhookChannelConfig = Annotated[OutboxConfig | WebhookConfig, Field(discriminator="provider")]
AnyChannelConfig = OutboxConfig | SendGridConfig | TwilioConfig | FcmConfig | WebhookConfig


class EnvironmentChannels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailConfig = Field(default_factory=OutboxConfig)
    sms: SmsConfig = Field(default_factory=OutboxConfig)
    push: PushConfig = Field(default_factory=OutboxConfig)
    webhook: WebhookChannelConfig = Field(default_factory=OutboxConfig)

    def items(self) -> list[tuple[str, AnyChannelConfig]]:
        return [("email", self.email), ("sms", self.sms), ("push", self.push), ("webhook", self.webhook)]


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environments: dict[str, EnvironmentChannels]

    def for_environment(self, env: str) -> EnvironmentChannels:
        if env not in self.environments:
            known = ", ".join(sorted(self.environments))
            raise KeyError(f"channels config has no environment {env!r} (known: {known}); set CRMFLOW_ENV")
        return self.environments[env]


class ChannelsConfigError(ValueError):
    pass


def load_channels_config(path: str | Path) -> ChannelsConfig:
    """Read channels.yaml; a missing file means every channel uses the outbox."""
    path = Path(path)
    if not path.exists():
        return ChannelsConfig(environments={"dev": EnvironmentChannels()})
    from crmflow.yaml_config import describe_validation_errors, yaml_error_line

    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ChannelsConfigError(f"{path}: not valid YAML{yaml_error_line(exc)}: {exc}") from exc
    try:
        return ChannelsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ChannelsConfigError(f"{path}: {describe_validation_errors(exc, root)}") from exc
