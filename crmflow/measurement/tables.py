"""Build every measurement table in one go: goals, attribution, trend, uplift, A/B results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from crmflow.measurement.ab import build_ab_results
from crmflow.measurement.attribution import build_attribution
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.goals import journey_goals, register_goals
from crmflow.measurement.inputs import stand_ins
from crmflow.measurement.uplift import build_uplift
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

MEASUREMENT_TABLES = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                      "journey_uplift", "journey_ab_results")


@dataclass
class MeasurementResult:
    counts: dict[str, int]
    missing_inputs: set[str]
    uplift: pd.DataFrame
    ab_results: pd.DataFrame
    goals: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def ensure_measurement_tables(wh: Warehouse) -> None:
    """The measurement tables exist (migration 45, with every earlier one; idempotent)."""
    apply_migrations(wh)


def build_measurement(con: Warehouse | object, journeys_dir: Path | None, as_of: datetime,
                      config: MeasurementConfig | None = None) -> MeasurementResult:
    """Rebuild every measurement table as of `as_of`, all or nothing (one transaction).
    `con`: a Warehouse, or a raw DuckDB connection of a caller not yet ported."""
    wh = as_warehouse(con)
    config = config or MeasurementConfig()
    goals = journey_goals(journeys_dir, config)
    ensure_measurement_tables(wh)
    with stand_ins(wh) as missing, wh.transaction():
        register_goals(wh, goals, config.paid_statuses)
        counts = build_attribution(wh, as_of, config)
        uplift = build_uplift(wh, goals, as_of, config)
        ab = build_ab_results(wh, as_of, config)
    counts.update(journeys_with_uplift=int((uplift["status"] == "ok").sum()) if len(uplift) else 0,
                  ab_variants=len(ab))
    return MeasurementResult(counts=counts, missing_inputs=missing, uplift=uplift, ab_results=ab, goals=goals)
