"""Holdout uplift per journey: did the journey change behaviour, compared with the random holdout?

Both groups are measured the same way, intention-to-treat: every enrolment whose goal window is over
(trigger_at + window <= as_of) counts, whether or not a message was actually sent or the user later
exited; it converted when the journey's goal happened in (trigger_at, trigger_at + window]. The goal
is re-evaluated here from the orders and events rather than read from converted_at, because the
journey engine stops checking goals once a treated enrolment exits while holdouts never exit; reading
converted_at would bias the comparison. Those counts are the dbt model journey_uplift_inputs; this
module adds the statistics (scipy) and writes journey_uplift.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.inputs import frame_from_arrow, replace_rows
from crmflow.measurement.schema import UPLIFT_SCHEMA
from crmflow.measurement.stats import newcombe_difference_interval, proportion, two_proportion_ztest
from crmflow.warehouse import Warehouse

# The per-group counts are the dbt model journey_uplift_inputs (dbt_project/models/marts/measurement).
GROUP_COUNTS_SQL = "select journey_id, is_holdout, enrolments, converted, revenue from journey_uplift_inputs"
GOAL_LABELS_SQL = "select journey_id, goal_label from journey_goals"


def group_counts(wh: Warehouse) -> pd.DataFrame:
    """Matured enrolments, conversions and in-window paid revenue per journey and group (the model)."""
    return frame_from_arrow(wh.fetch_arrow(GROUP_COUNTS_SQL))


def uplift_table(counts: pd.DataFrame, goals: pd.DataFrame, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    """One row per journey from the per-group counts; the statistics are vectorised over journeys."""
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in UPLIFT_SCHEMA.names})
    wide = counts.pivot_table(index="journey_id", columns="is_holdout", values=["enrolments", "converted", "revenue"],
                              aggfunc="sum", fill_value=0)
    out = pd.DataFrame(index=wide.index)

    def col(measure: str, holdout: bool) -> np.ndarray:
        key = (measure, holdout)
        return wide[key].to_numpy(dtype=float) if key in wide.columns else np.zeros(len(wide))

    nt, xt, rt = col("enrolments", False), col("converted", False), col("revenue", False)
    nh, xh, rh = col("enrolments", True), col("converted", True), col("revenue", True)
    out["treated_enrolments"], out["treated_converted"] = nt.astype("int64"), xt.astype("int64")
    out["holdout_enrolments"], out["holdout_converted"] = nh.astype("int64"), xh.astype("int64")
    out["treated_rate"], out["holdout_rate"] = proportion(xt, nt), proportion(xh, nh)
    out["uplift_abs"] = out["treated_rate"] - out["holdout_rate"]
    low, high = newcombe_difference_interval(xt, nt, xh, nh, config.alpha)
    out["uplift_ci_low"], out["uplift_ci_high"] = low, high
    out["uplift_rel"] = np.where(out["holdout_rate"] > 0, out["uplift_abs"] / out["holdout_rate"].where(
        out["holdout_rate"] > 0), np.nan)
    _, p_value = two_proportion_ztest(xt, nt, xh, nh)
    out["p_value"] = p_value
    out["treated_revenue_per_enrolment"] = proportion(rt, nt)
    out["holdout_revenue_per_enrolment"] = proportion(rh, nh)
    # What the treated group earned beyond what it would have at the holdout's revenue per enrolment.
    out["incremental_revenue"] = (out["treated_revenue_per_enrolment"] - out["holdout_revenue_per_enrolment"]) * nt

    enough = (nt >= config.min_group_size) & (nh >= config.min_group_size)
    out["significant"] = enough & (out["p_value"] < config.alpha)
    out["status"] = np.where(enough, "ok", "not enough data")
    out["note"] = np.where(
        enough,
        np.where(out["significant"], "significant at the " + f"{1 - config.alpha:.0%}" + " level",
                 "no significant difference"),
        "not enough data: need " + str(config.min_group_size) + " matured enrolments per group, have "
        + out["treated_enrolments"].astype(str) + " treated / " + out["holdout_enrolments"].astype(str) + " holdout",
    )
    out = out.reset_index()
    labels = goals.set_index("journey_id")["goal_label"] if len(goals) else pd.Series(dtype=str)
    out["goal"] = out["journey_id"].map(labels).fillna(
        f"paid order within {config.default_window_days:g}d (default)")
    out["as_of"] = pd.Timestamp(as_of)
    return out[UPLIFT_SCHEMA.names].sort_values("journey_id").reset_index(drop=True)


def build_uplift(wh: Warehouse, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    goals = frame_from_arrow(wh.fetch_arrow(GOAL_LABELS_SQL))
    table = uplift_table(group_counts(wh), goals, as_of, config)
    replace_rows(wh, "journey_uplift", table, UPLIFT_SCHEMA)
    return table
