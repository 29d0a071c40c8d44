"""marketing/policies.yaml: consent, frequency caps, quiet hours and delivery semantics that apply to
every journey's messages. Missing file = the defaults below."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmflow.journeys.durations import parse_duration
from crmflow.journeys.schema import ChannelName, Duration, LocalTime
from crmflow.yaml_config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuietHours(_Strict):
    start: LocalTime = time(21, 0)
    end: LocalTime = time(8, 0)
    channels: list[ChannelName] = Field(default_factory=lambda: ["email", "sms", "push"])


class ChannelCap(_Strict):
    channel: ChannelName | Literal["all"]
    max: int = Field(ge=1)
    window: Duration


class DispatchConfig(_Strict):
    batch_size: int = Field(500, ge=1, le=10000)
    max_per_run: int = Field(100_000, ge=1)
    # at_most_once: rows left in 'sending' after a crash become 'unknown' (never resent);
    # at_least_once: they go back to 'planned' and are sent again.
    delivery: dict[ChannelName, Literal["at_most_once", "at_least_once"]] = Field(default_factory=dict)
    # A claim's lease (worker id + expiry) covers one group of in-flight messages; `ledger status`
    # shows rows still 'sending' past it.
    lease: Duration = Field(default_factory=lambda: parse_duration("10m"))
    # An `unknown` row with no delivery event this long after it became unknown is "probably not
    # delivered": per channel closed as `lost` (the default) or resent once (`resend_once`).
    unknown_grace: Duration = Field(default_factory=lambda: parse_duration("2d"))
    after_grace: dict[ChannelName, Literal["lost", "resend_once"]] = Field(default_factory=dict)

    def semantics(self, channel: str) -> str:
        return self.delivery.get(channel, "at_most_once")  # type: ignore[call-overload]

    def grace_policy(self, channel: str) -> str:
        return self.after_grace.get(channel, "lost")  # type: ignore[call-overload]


class Policies(_Strict):
    default_timezone: str = "UTC"
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    frequency_caps: list[ChannelCap] = Field(
        default_factory=lambda: [
            # written as in the docs, so the cap reasons read cap:email:3/7d, not 3/1w
            ChannelCap(channel="email", max=3, window=parse_duration("7d")),
            ChannelCap(channel="sms", max=2, window=parse_duration("7d")),
            ChannelCap(channel="push", max=1, window=parse_duration("1d")),
        ]
    )
    sms_max_segments: int = Field(3, ge=1, le=10)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


def load_policies(path: Path | None) -> Policies:
    """policies.yaml; no file means the documented defaults."""
    if path is None:
        return Policies()
    return load_yaml_model(path, Policies, if_missing=Policies)
