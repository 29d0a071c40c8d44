"""Each journey's goal (what counts as a conversion) and its window, from marketing/journeys/*.yaml.

A journey without a goal block counts a paid order as its conversion; a journey whose file is
broken or gone (it still has rows in the ledger) gets the same default, so its history stays
measurable. Both cases are listed in docs/measurement.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from crmflow.journeys.loader import load_journeys
from crmflow.measurement.config import MeasurementConfig
from crmflow.warehouse import Warehouse

GOALS_TABLE = "_measure_goals"
GOAL_STATUSES_TABLE = "_measure_goal_statuses"
PAID_STATUSES_TABLE = "_measure_paid_statuses"


def journey_goals(journeys_dir: Path | None, config: MeasurementConfig) -> pd.DataFrame:
    """One row per configured journey: journey_id, goal_kind (order|event), goal_event,
    goal_statuses (list), window_seconds, goal_label (for the report)."""
    rows = []
    loaded = load_journeys(journeys_dir) if journeys_dir is not None and journeys_dir.exists() else []
    for item in loaded:
        journey = item.journey
        if journey is None:
            continue  # unparseable: measured with the default goal (its ledger rows still count)
        goal = journey.goal
        if goal is None:
            rows.append((journey.id, "order", None, list(config.paid_statuses), config.default_window_seconds,
                         f"paid order within {config.default_window_days:g}d (default)"))
        elif goal.order_status:
            seconds = int(goal.within.total_seconds())
            rows.append((journey.id, "order", None, list(goal.order_status), seconds,
                         f"order {'/'.join(goal.order_status)} within {_days(seconds)}"))
        else:
            seconds = int(goal.within.total_seconds())
            rows.append((journey.id, "event", goal.event, list(config.paid_statuses), seconds,
                         f"event {goal.event} within {_days(seconds)}"))
    return pd.DataFrame(rows, columns=["journey_id", "goal_kind", "goal_event", "goal_statuses",
                                       "window_seconds", "goal_label"])


def _days(seconds: int) -> str:
    return f"{seconds / 86400:g}d" if seconds % 3600 == 0 and seconds >= 86400 else f"{seconds / 3600:g}h"


GOALS_SCHEMA = pa.schema([("journey_id", pa.string()), ("goal_kind", pa.string()), ("goal_event", pa.string()),
                          ("window_seconds", pa.int64()), ("goal_label", pa.string())])
STATUSES_SCHEMA = pa.schema([("journey_id", pa.string()), ("status", pa.string())])


def register_goals(wh: Warehouse, goals: pd.DataFrame, paid_statuses: tuple[str, ...]) -> None:
    """Goals as temp tables with explicit types, so an empty frame still has usable columns.

    A goal's order statuses are rows of GOAL_STATUSES_TABLE (no list columns: they are not portable);
    PAID_STATUSES_TABLE holds the paid statuses, the goal of journeys that have no configured goal.
    """
    wh.create_temp_table(GOALS_TABLE, pa.Table.from_pandas(goals[GOALS_SCHEMA.names], schema=GOALS_SCHEMA,
                                                           preserve_index=False))
    pairs = goals[["journey_id", "goal_statuses"]].explode("goal_statuses").dropna()
    wh.create_temp_table(GOAL_STATUSES_TABLE, pa.table({"journey_id": pa.array(pairs["journey_id"], pa.string()),
                                                        "status": pa.array(pairs["goal_statuses"], pa.string())},
                                                       schema=STATUSES_SCHEMA))
    wh.create_temp_table(PAID_STATUSES_TABLE, pa.table({"status": pa.array(list(paid_statuses), pa.string())}))
