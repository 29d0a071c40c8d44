"""Every measurement table in one go: goals (Python, from YAML), the dbt measurement models
(attribution, funnel, trend, uplift and A/B inputs), then the statistics (Python, scipy) that write
journey_uplift and journey_ab_results.

In the Dagster graph these are three steps (the journey_goals asset, the dbt assets of
dbt_project/models/marts/measurement, the journey_measurement asset). `measure` runs the same three
for `crmflow report` and the tests, with the dbt step supplied by the caller (orchestration runs dbt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from crmflow.measurement.ab import build_ab_results
from crmflow.measurement.attribution import attribution_counts
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.goals import journey_goals, write_journey_goals
from crmflow.measurement.relations import (  # noqa: F401  (re-exported)
    MEASUREMENT_MODELS,
    MEASUREMENT_SELECTOR,
    MEASUREMENT_TABLES,
    STATISTICS_TABLES,
)
from crmflow.measurement.uplift import build_uplift
from crmflow.warehouse import Warehouse, WarehouseTarget, apply_migrations, open_warehouse

# Builds the dbt measurement models as of a time, following a configuration's vars.
RunModels = Callable[[datetime, MeasurementConfig], None]


@dataclass
class MeasurementResult:
    counts: dict[str, int]
    uplift: pd.DataFrame
    ab_results: pd.DataFrame
    goals: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def prepare_goals(wh: Warehouse, journeys_dir: Path | None, config: MeasurementConfig) -> pd.DataFrame:
    """Migrate, then write every configured journey's goal for the dbt models (journey_goals)."""
    apply_migrations(wh)
    goals = journey_goals(journeys_dir, config)
    write_journey_goals(wh, goals)
    return goals


def build_statistics(wh: Warehouse, as_of: datetime, config: MeasurementConfig) -> MeasurementResult:
    """Uplift and A/B statistics from the dbt input models, written all or nothing (one transaction)."""
    with wh.transaction():
        uplift = build_uplift(wh, as_of, config)
        ab = build_ab_results(wh, as_of, config)
    counts = attribution_counts(wh)
    counts.update(journeys_with_uplift=int((uplift["status"] == "ok").sum()) if len(uplift) else 0,
                  ab_variants=len(ab))
    return MeasurementResult(counts=counts, uplift=uplift, ab_results=ab)


def measure(target: WarehouseTarget | str | Path, journeys_dir: Path | None, as_of: datetime,
            run_models: RunModels, config: MeasurementConfig | None = None) -> MeasurementResult:
    """Goals, the dbt models (`run_models`, while this process holds no connection: a DuckDB file
    has one writer), then the statistics."""
    config = config or MeasurementConfig()
    with open_warehouse(target) as wh:
        goals = prepare_goals(wh, journeys_dir, config)
    run_models(as_of, config)
    with open_warehouse(target) as wh:
        result = build_statistics(wh, as_of, config)
    result.goals = goals
    return result
