"""Dagster resources. Paths come from the environment (see crmflow.settings); tests inject their own."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from connectors.sources.time_range import (
    DEFAULT_EARLIEST,
    DEFAULT_EVENT_SKEW_HOURS,
    DEFAULT_LATEST,
    AcceptedTimes,
)
from crmflow.settings import Settings, load_settings
from crmflow.warehouse import (
    Warehouse,
    WarehouseTarget,
    apply_migrations,
    open_warehouse,
    parse_target,
)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (CRMFLOW_WAREHOUSE: a DuckDB file or a postgresql:// URL; with a Spark warehouse the
    store CRMFLOW_STATE). Open it per step and close it: DuckDB has one writer at a time.

    `path` is a DuckDB file or a postgresql:// URL without the password (resource config is shown in
    the Dagster UI): the password comes from PGPASSWORD, which `from_target` sets for this process.
    """

    path: str
    # CRMFLOW_WAREHOUSE=spark://...: the Spark warehouse dbt builds on; `path` is then the store
    # (CRMFLOW_STATE) and the dbt steps sync tables with Spark (orchestration/spark_sync.py)
    spark: str = ""

    @classmethod
    def from_target(cls, target: WarehouseTarget, spark: WarehouseTarget | None = None) -> WarehouseResource:
        if target.password:
            os.environ["PGPASSWORD"] = target.password
        return cls(path=target.url_without_password(), spark=spark.url_without_password() if spark else "")

    @property
    def target(self) -> WarehouseTarget:
        return parse_target(self.path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Every run brings the warehouse to the latest schema before its first step, also one the
        Dagster UI or a schedule launches without `crmflow run` (applying twice is applying once)."""
        with open_warehouse(self.path) as warehouse:
            apply_migrations(warehouse)

    @contextmanager
    def open(self, read_only: bool = False) -> Iterator[Warehouse]:
        """The warehouse interface (crmflow.warehouse.Warehouse) on the configured target."""
        with open_warehouse(self.path, read_only=read_only) as warehouse:
            yield warehouse


class CrmflowSettingsResource(dg.ConfigurableResource):
    """Where landing files, outbox, exports and marketer config live, and the business time zone."""

    landing_dir: str
    outbox_dir: str
    export_dir: str
    marketing_dir: str
    timezone: str = "UTC"
    # accepted timestamps at ingestion (connectors/sources/time_range.py; env CRMFLOW_TIMESTAMP_MIN,
    # CRMFLOW_TIMESTAMP_MAX, CRMFLOW_EVENT_CLOCK_SKEW_HOURS)
    timestamp_min: str = DEFAULT_EARLIEST
    timestamp_max: str = DEFAULT_LATEST
    event_clock_skew_hours: float = DEFAULT_EVENT_SKEW_HOURS

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> CrmflowSettingsResource:
        accepted = AcceptedTimes.from_env(os.environ if env is None else env)  # a bad value fails at load
        return cls(
            landing_dir=str(settings.landing_dir),
            outbox_dir=str(settings.outbox_dir),
            export_dir=str(settings.export_dir),
            marketing_dir=str(settings.marketing_dir),
            timezone=settings.timezone,
            timestamp_min=accepted.earliest.isoformat(),
            timestamp_max=accepted.latest.isoformat(),
            event_clock_skew_hours=accepted.event_skew.total_seconds() / 3600,
        )

    @property
    def accepted_times(self) -> AcceptedTimes:
        return AcceptedTimes.parse(self.timestamp_min, self.timestamp_max, self.event_clock_skew_hours)

    @property
    def journeys_dir(self) -> Path:
        return Path(self.marketing_dir) / "journeys"


def default_settings() -> Settings:
    return load_settings()
