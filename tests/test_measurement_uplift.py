"""Holdout uplift on constructed enrolments with hand-worked answers.

j_cart (goal: paid/shipped order within 3 days of the trigger), as of 2026-03-20:
  treated: 70 matured enrolments (trigger 03-10), 56 with a paid order of 10.00 on 03-11 -> 56/70 = 0.80
  holdout: 80 matured enrolments (trigger 03-10), 48 with a paid order of 10.00 on 03-12 -> 48/80 = 0.60
  noise that must not count: 5 treated enrolments triggered 03-19 (window not over), 10 treated users
  with a cancelled order, 4 holdout users whose order came 4 days later (outside the window).
  uplift = 0.20, relative 0.20 / 0.60 = 0.3333; Newcombe 95 % interval 0.0524 .. 0.3339 (published);
  pooled z = 0.2 / sqrt(104/150 * 46/150 * (1/70 + 1/80)) = 2.6502, p = 0.00804;
  revenue per enrolment 560 / 70 = 8.00 vs 480 / 80 = 6.00 -> incremental (8 - 6) * 70 = 140.00.
j_app (goal: event app_open within 2 days): 10 treated (5 converted) and 10 holdout (2) -> below the
  minimum of 30 per group: "not enough data".
"""

from __future__ import annotations

import duckdb
import pytest
from helpers_measurement import add_uplift_world, create_inputs, measure_world, write_journeys

from crmflow.measurement.config import MeasurementConfig


@pytest.fixture(scope="module")
def uplift(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uplift")
    path = str(tmp / "wh.duckdb")
    with duckdb.connect(path) as con:
        create_inputs(con)
        add_uplift_world(con)
    result = measure_world(path, write_journeys(tmp / "journeys"), MeasurementConfig(min_group_size=30))
    con = duckdb.connect(path)
    yield con, result.uplift.set_index("journey_id")
    con.close()


def test_uplift_arithmetic(uplift):
    _, table = uplift
    row = table.loc["j_cart"]
    assert (row.treated_enrolments, row.treated_converted) == (70, 56)
    assert (row.holdout_enrolments, row.holdout_converted) == (80, 48)
    assert row.uplift_abs == pytest.approx(0.2)
    assert row.uplift_rel == pytest.approx(1 / 3)
    assert (round(row.uplift_ci_low, 4), round(row.uplift_ci_high, 4)) == (0.0524, 0.3339)
    assert row.p_value == pytest.approx(0.00804, abs=5e-5)
    assert row.incremental_revenue == pytest.approx(140.0)
    assert row.status == "ok" and bool(row.significant)
    assert row.goal == "order paid/shipped within 3d"


def test_small_groups_say_not_enough_data(uplift):
    _, table = uplift
    row = table.loc["j_app"]
    assert (row.treated_converted, row.holdout_converted) == (5, 2)
    assert row.status == "not enough data"
    assert not bool(row.significant)
    assert "have 10 treated / 10 holdout" in row.note


def test_uplift_table_is_written(uplift):
    con, _ = uplift
    assert con.execute("select count(*) from journey_uplift").fetchone()[0] == 2
