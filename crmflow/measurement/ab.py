"""A/B results per journey step with variants: each variant's conversion (last-touch, the dbt model
journey_ab_inputs over journey_attribution) against a reference variant, so a marketer can pick the winner.

The reference is the variant named "control" when there is one, otherwise the variant with the
highest conversion rate (ties: the larger sample, then the name). Every other variant gets the
difference to the reference with Newcombe's 95 % interval and a pooled two-proportion z-test.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.inputs import frame_from_arrow, replace_rows
from crmflow.measurement.schema import AB_SCHEMA
from crmflow.measurement.stats import (
    newcombe_difference_interval,
    proportion,
    two_proportion_ztest,
    wilson_interval,
)
from crmflow.warehouse import Warehouse

# Sent/converted/revenue per variant of the steps with at least two variants: the dbt model.
VARIANT_COUNTS_SQL = "select journey_id, step_id, variant, sent, converted, revenue from journey_ab_inputs"


def variant_counts(wh: Warehouse) -> pd.DataFrame:
    """Sent/converted/revenue per variant, for steps that have at least two variants."""
    counts = frame_from_arrow(wh.fetch_arrow(VARIANT_COUNTS_SQL))
    # Sorted here, in code-point order whatever the database collation.
    return counts.sort_values(["journey_id", "step_id", "variant"]).reset_index(drop=True)


def ab_table(counts: pd.DataFrame, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in AB_SCHEMA.names})
    df = counts.copy()
    df["conversion_rate"] = proportion(df["converted"], df["sent"])
    df["rate_ci_low"], df["rate_ci_high"] = wilson_interval(df["converted"], df["sent"], config.alpha)
    # Pick the reference per step: "control" first, else best rate, larger sample, then name.
    df["_is_control"] = df["variant"].str.lower() == "control"
    ranked = df.sort_values(["journey_id", "step_id", "_is_control", "conversion_rate", "sent", "variant"],
                            ascending=[True, True, False, False, False, True], na_position="last")
    reference = ranked.groupby(["journey_id", "step_id"], sort=False).head(1)
    ref = reference.set_index(["journey_id", "step_id"])[["variant", "sent", "converted"]].add_prefix("ref_")
    df = df.join(ref, on=["journey_id", "step_id"])
    df["reference_variant"] = df["ref_variant"]
    df["is_reference"] = df["variant"] == df["ref_variant"]
    x1, n1, x2, n2 = (df[c].to_numpy(dtype=float) for c in ("converted", "sent", "ref_converted", "ref_sent"))
    df["diff_vs_reference"] = proportion(x1, n1) - proportion(x2, n2)
    df["diff_ci_low"], df["diff_ci_high"] = newcombe_difference_interval(x1, n1, x2, n2, config.alpha)
    df["z"], df["p_value"] = two_proportion_ztest(x1, n1, x2, n2)
    enough = (n1 >= config.min_group_size) & (n2 >= config.min_group_size)
    significant = enough & (df["p_value"].to_numpy() < config.alpha)
    df["significant"] = np.where(df["is_reference"], False, significant)
    for column in ("diff_vs_reference", "diff_ci_low", "diff_ci_high", "z", "p_value"):
        df.loc[df["is_reference"], column] = np.nan
    better = df["diff_vs_reference"] > 0
    df["verdict"] = np.select(
        [df["is_reference"], ~enough, significant & better, significant],
        ["reference", f"not enough data (need {config.min_group_size} sends per variant)",
         "significantly better than " + df["ref_variant"], "significantly worse than " + df["ref_variant"]],
        default="no significant difference from " + df["ref_variant"],
    )
    df["as_of"] = pd.Timestamp(as_of)
    return df[AB_SCHEMA.names].reset_index(drop=True)


def build_ab_results(wh: Warehouse, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    table = ab_table(variant_counts(wh), as_of, config)
    replace_rows(wh, "journey_ab_results", table, AB_SCHEMA)
    return table
