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
from helpers_measurement import (
    AS_OF,
    add_enrolments,
    add_events_for,
    add_orders_for,
    create_inputs,
    write_journeys,
)

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.tables import build_measurement


@pytest.fixture(scope="module")
def uplift(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uplift")
    con = duckdb.connect(str(tmp / "wh.duckdb"))
    create_inputs(con)
    add_enrolments(con, "j_cart", "t", 70, False, "2026-03-10 12:00+00")
    add_enrolments(con, "j_cart", "h", 80, True, "2026-03-10 12:00+00")
    add_enrolments(con, "j_cart", "young", 5, False, "2026-03-19 12:00+00")
    add_orders_for(con, "t", 56, "2026-03-11 12:00+00")
    add_orders_for(con, "h", 48, "2026-03-12 12:00+00")
    add_orders_for(con, "young", 5, "2026-03-19 13:00+00")
    add_orders_for(con, "t6", 10, "2026-03-11 12:00+00", status="cancelled")  # users t60..t69
    add_orders_for(con, "h5", 4, "2026-03-14 12:00:01+00")  # users h50..h53: one second too late
    add_enrolments(con, "j_app", "at", 10, False, "2026-03-01 00:00+00")
    add_enrolments(con, "j_app", "ah", 10, True, "2026-03-01 00:00+00")
    add_events_for(con, "at", 5, "app_open", "2026-03-02 00:00+00")
    add_events_for(con, "ah", 2, "app_open", "2026-03-02 23:00+00")
    add_events_for(con, "ah", 10, "app_open", "2026-03-04 00:00+00")  # after the 2-day window
    result = build_measurement(con, write_journeys(tmp / "journeys"), AS_OF, MeasurementConfig(min_group_size=30))
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
