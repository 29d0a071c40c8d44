"""The channel interface the journey dispatcher sends through.

A channel takes a batch of rendered messages and returns one result per message. Retries, rate
limits and batching are the channel's business; the dispatcher only claims ledger rows before the
call and records the results after it (see crmflow/journeys/dispatch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

ChannelName = Literal["email", "sms", "push", "webhook"]
CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "push", "webhook")


@dataclass(frozen=True)
class OutboundMessage:
    message_key: str  # the ledger's deterministic key; carried to the provider (custom_args etc.)
    channel: ChannelName
    user_id: str
    to: str  # email address, E.164 phone number, push device token, or webhook recipient id
    journey_id: str
    step_id: str
    variant: str | None = None
    subject: str | None = None  # email
    body: str = ""  # email text / SMS text / push body / webhook payload text
    html: str | None = None  # email
    title: str | None = None  # push
    deep_link: str | None = None  # push
    locale: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    planned_at: datetime | None = None  # when the journey tick planned it (ledger planned_at)
    # The dispatch run's clock (its as-of, never the wall clock) when it hands the message over: the
    # ledger's sent_at once the send succeeds.
    sent_at: datetime | None = None


# unknown: the request was sent and no answer came back (timeout, reset, accept-then-drop): the provider
# may have accepted it. Never "failed" (that means surely not delivered); delivery events settle it.
SendStatus = Literal["sent", "failed", "unknown"]


@dataclass(frozen=True)
class SendResult:
    message_key: str
    status: SendStatus
    provider_message_id: str | None = None
    error: str | None = None  # the provider's reason, never a secret
    attempts: int = 1
    # True when the address itself is dead (invalid push token, hard bounce): never use it again.
    address_dead: bool = False


class Channel(Protocol):
    name: str
    max_batch: int  # the most messages in flight at once: the dispatcher claims at most this many at a time

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]: ...
