"""Journey resources: the channel mapping the dispatcher sends through.

Injectable: definitions use the channels factory (channels.yaml + credentials from the environment,
outbox fallback); tests use `outbox_only=True` or a subclass returning fakes."""

from pathlib import Path

import dagster as dg

from connectors.channels.base import CHANNELS, Channel
from connectors.channels.outbox import OutboxChannel


class JourneyChannelsResource(dg.ConfigurableResource):
    outbox_dir: str
    channels_file: str | None = None  # marketing/channels.yaml; None = outbox for every channel
    environment: str | None = None  # channels.yaml environment; None = CRMFLOW_ENV or dev
    outbox_only: bool = False

    def channels(self) -> dict[str, Channel]:
        if self.outbox_only or not self.channels_file:
            return {name: OutboxChannel(name, self.outbox_dir) for name in CHANNELS}
        from connectors.channels.config import load_channels_config
        from connectors.channels.factory import build_channels, current_environment

        config = load_channels_config(Path(self.channels_file))
        built = build_channels(config, self.environment or current_environment(), self.outbox_dir)
        # A channel missing from channels.yaml still has somewhere safe to go: the outbox.
        return {name: built.get(name) or OutboxChannel(name, self.outbox_dir) for name in CHANNELS}
