"""Dagster resources. Paths come from the environment (see crmflow.settings); tests inject their own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from crmflow.settings import Settings, load_settings
from crmflow.warehouse import connect


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Open a connection per step and close it: one writer at a time."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(Path(self.path), read_only=read_only) as con:
            yield con


class CrmflowSettingsResource(dg.ConfigurableResource):
    """Where landing files, outbox, exports and marketer config live, and the business time zone."""

    landing_dir: str
    outbox_dir: str
    export_dir: str
    marketing_dir: str
    timezone: str = "UTC"

    @classmethod
    def from_settings(cls, settings: Settings) -> CrmflowSettingsResource:
        return cls(
            landing_dir=str(settings.landing_dir),
            outbox_dir=str(settings.outbox_dir),
            export_dir=str(settings.export_dir),
            marketing_dir=str(settings.marketing_dir),
            timezone=settings.timezone,
        )

    @property
    def journeys_dir(self) -> Path:
        return Path(self.marketing_dir) / "journeys"


def default_settings() -> Settings:
    return load_settings()
