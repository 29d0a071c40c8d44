"""Interval and test arithmetic against published or hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers_measurement import AS_OF

from crmflow.measurement.ab import ab_table
from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.stats import newcombe_difference_interval, two_proportion_ztest, wilson_interval


def test_wilson_matches_newcombe_1998_example():
    # Newcombe (1998), single proportion 81/263: Wilson interval 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(float(low), 4), round(float(high), 4)) == (0.2553, 0.3662)


def test_newcombe_difference_matches_published_example():
    # Newcombe (1998), 56/70 - 48/80 = 0.2000, method 10 interval 0.0524 to 0.3339.
    low, high = newcombe_difference_interval(56, 70, 48, 80)
    assert (round(float(low), 4), round(float(high), 4)) == (0.0524, 0.3339)


def test_z_test_by_hand():
    # 60/200 vs 40/200: pooled p = 0.25, se = sqrt(0.25 * 0.75 * (1/200 + 1/200)) = 0.0433013,
    # z = 0.1 / 0.0433013 = 2.3094, two-sided p = 2 * (1 - Phi(2.3094)) = 0.02092.
    z, p = two_proportion_ztest(60, 200, 40, 200)
    assert float(z) == pytest.approx(2.3094, abs=1e-4)
    assert float(p) == pytest.approx(0.02092, abs=1e-5)


def test_undefined_cases_are_nan_not_errors():
    z, p = two_proportion_ztest([0, 0, 10], [0, 10, 10], [1, 0, 10], [10, 10, 10])
    assert np.isnan(z).all() and np.isnan(p).all()  # empty group, both 0 %, both 100 %
    low, high = wilson_interval(0, 0)
    assert math.isnan(float(low)) and math.isnan(float(high))
    low, high = wilson_interval(0, 10)
    assert float(low) == 0 and 0 < float(high) < 0.35


def test_ab_reference_is_best_variant_and_worse_one_is_flagged():
    counts = pd.DataFrame({"journey_id": ["j"] * 3, "step_id": ["s"] * 3, "variant": ["A", "B", "C"],
                           "sent": [200, 200, 10], "converted": [60, 40, 5], "revenue": [600.0, 400.0, 50.0]})
    table = ab_table(counts, AS_OF, MeasurementConfig(min_group_size=30)).set_index("variant")
    # C has the best rate (50 %) but only 10 sends: best rate still makes it the reference.
    assert table["reference_variant"].unique().tolist() == ["C"]
    assert table.loc["C", "verdict"] == "reference"
    assert table.loc["A", "verdict"].startswith("not enough data")

    counts = counts[counts.variant != "C"]
    table = ab_table(counts, AS_OF, MeasurementConfig(min_group_size=30)).set_index("variant")
    assert table.loc["A", "is_reference"] and table.loc["A", "conversion_rate"] == 0.3
    assert table.loc["B", "diff_vs_reference"] == pytest.approx(-0.1)
    assert table.loc["B", "p_value"] == pytest.approx(0.02092, abs=1e-5)
    assert table.loc["B", "verdict"] == "significantly worse than A"
    assert bool(table.loc["B", "significant"])
    assert table.loc["B", "diff_ci_low"] < -0.1 < table.loc["B", "diff_ci_high"] < 0


def test_ab_control_variant_is_the_reference_when_present():
    counts = pd.DataFrame({"journey_id": ["j", "j"], "step_id": ["s", "s"], "variant": ["control", "new"],
                           "sent": [200, 200], "converted": [40, 60], "revenue": [0.0, 0.0]})
    table = ab_table(counts, AS_OF, MeasurementConfig()).set_index("variant")
    assert table.loc["new", "verdict"] == "significantly better than control"
    assert table.loc["new", "diff_vs_reference"] == pytest.approx(0.1)
