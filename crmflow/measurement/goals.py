"""Each journey's goal (what counts as a conversion) and its window, from marketing/journeys/*.yaml.

A journey without a goal block counts a paid order as its conversion; a journey whose file is
broken or gone (it still has rows in the ledger) gets the same default, so its history stays
measurable. Both cases are listed in docs/measurement.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from crmflow.journeys.loader import load_journeys
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.inputs import replace_rows
from crmflow.measurement.schema import GOAL_STATUSES_SCHEMA, GOALS_SCHEMA
from crmflow.warehouse import Warehouse


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


def write_journey_goals(wh: Warehouse, goals: pd.DataFrame) -> None:
    """Make journey_goals and journey_goal_statuses (migration 46, ops schema) hold exactly `goals`,
    in one transaction. A goal's order statuses are rows, not a list column (lists are not portable);
    the dbt measurement models read both tables (sources journey_ops.journey_goals / _statuses)."""
    pairs = goals[["journey_id", "goal_statuses"]].explode("goal_statuses").dropna()
    statuses = pd.DataFrame({"journey_id": pairs["journey_id"], "status": pairs["goal_statuses"]})
    with wh.transaction():
        replace_rows(wh, wh.relation("ops", "journey_goals"), goals, GOALS_SCHEMA)
        replace_rows(wh, wh.relation("ops", "journey_goal_statuses"), statuses.drop_duplicates(),
                     GOAL_STATUSES_SCHEMA)
