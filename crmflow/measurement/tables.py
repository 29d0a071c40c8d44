"""Build every measurement table in one go: goals, attribution, trend, uplift, A/B results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from crmflow.measurement.ab import build_ab_results
from crmflow.measurement.attribution import build_attribution
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.goals import journey_goals, register_goals
from crmflow.measurement.inputs import stand_ins
from crmflow.measurement.uplift import build_uplift

MEASUREMENT_TABLES = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend",
                      "journey_uplift", "journey_ab_results")


@dataclass
class MeasurementResult:
    counts: dict[str, int]
    missing_inputs: set[str]
    uplift: pd.DataFrame
    ab_results: pd.DataFrame
    goals: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def build_measurement(con: duckdb.DuckDBPyConnection, journeys_dir: Path | None, as_of: datetime,
                      config: MeasurementConfig | None = None) -> MeasurementResult:
    config = config or MeasurementConfig()
    goals = journey_goals(journeys_dir, config)
    with stand_ins(con) as missing:
        register_goals(con, goals)
        counts = build_attribution(con, as_of, config)
        uplift = build_uplift(con, goals, as_of, config)
        ab = build_ab_results(con, as_of, config)
    counts.update(journeys_with_uplift=int((uplift["status"] == "ok").sum()) if len(uplift) else 0,
                  ab_variants=len(ab))
    return MeasurementResult(counts=counts, missing_inputs=missing, uplift=uplift, ab_results=ab, goals=goals)
