"""A/B results per journey step with variants: each variant's conversion (last-touch, from
journey_attribution) against a reference variant, so a marketer can pick the winner.

The reference is the variant named "control" when there is one, otherwise the variant with the
highest conversion rate (ties: the larger sample, then the name). Every other variant gets the
difference to the reference with Newcombe's 95 % interval and a pooled two-proportion z-test.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from crmflow.measurement.attribution import NO_VARIANT
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.stats import (
    newcombe_difference_interval,
    proportion,
    two_proportion_ztest,
    wilson_interval,
)
from crmflow.measurement.uplift import write_table

AB_COLUMNS = {
    "journey_id": "varchar", "step_id": "varchar", "variant": "varchar",
    "sent": "bigint", "converted": "bigint", "revenue": "double",
    "conversion_rate": "double", "rate_ci_low": "double", "rate_ci_high": "double",
    "reference_variant": "varchar", "is_reference": "boolean",
    "diff_vs_reference": "double", "diff_ci_low": "double", "diff_ci_high": "double",
    "z": "double", "p_value": "double", "significant": "boolean", "verdict": "varchar", "as_of": "timestamptz",
}


def variant_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Sent/converted/revenue per variant, for steps that have at least two variants."""
    return con.execute(f"""
        select journey_id, step_id, variant, sum(sent) as sent, sum(converted) as converted,
               cast(sum(revenue) as double) as revenue
        from journey_attribution
        where variant <> '{NO_VARIANT}'
        group by journey_id, step_id, variant
        qualify count(*) over (partition by journey_id, step_id) >= 2
        order by journey_id, step_id, variant
    """).df()


def ab_table(counts: pd.DataFrame, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    if counts.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in AB_COLUMNS})
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
    return df[list(AB_COLUMNS)].reset_index(drop=True)


def build_ab_results(con: duckdb.DuckDBPyConnection, as_of: datetime, config: MeasurementConfig) -> pd.DataFrame:
    table = ab_table(variant_counts(con), as_of, config)
    write_table(con, "journey_ab_results", table, AB_COLUMNS)
    return table
