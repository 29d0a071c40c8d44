"""The report's figures on hand-made warehouses: the right-censored conversion trend (rpt_trend), readable LTV bars,
the bounce rate without delivery events and the reporting currency."""

from __future__ import annotations

import math

import duckdb
import pandas as pd
import pytest
import yaml
from helpers_measurement import (
    AS_OF,
    add_delivery,
    add_orders,
    add_sends,
    create_inputs,
    measure_world,
    write_journeys,
)

from crmflow.report import charts
from crmflow.report.data import FIGURES, QUERIES, REPORT_MODELS, load_report_data, reporting_currency
from crmflow.report.render import NO_DELIVERY_EVENTS, key_figures
from crmflow.settings import DBT_PROJECT_DIR


@pytest.fixture
def trend_warehouse(tmp_path):
    """j_welcome (goal: a paid order within 7 days). As of 2026-03-20:
    send day A, 03-01, 10 sends: first orders on day 1 (a0, a1) and day 5 (a2); all 8 days are over.
    send day B, 03-17, 10 sends: first orders on day 0 (b0) and day 2 (b1..b3); only days 0..2 are over."""
    path = str(tmp_path / "wh.duckdb")
    con = duckdb.connect(path)
    create_inputs(con)
    add_sends(con, [(f"a{i}", "j_welcome", "w1", None, f"a{i}", "sent", "2026-03-01 10:00+00") for i in range(10)]
              + [(f"b{i}", "j_welcome", "w1", None, f"b{i}", "sent", "2026-03-17 10:00+00") for i in range(10)])
    add_orders(con, [("oa0", "a0", "2026-03-02 12:00+00", "paid", 10), ("oa1", "a1", "2026-03-02 13:00+00", "paid", 10),
                     ("oa2", "a2", "2026-03-06 12:00+00", "paid", 10), ("ob0", "b0", "2026-03-17 15:00+00", "paid", 10),
                     *[(f"ob{i}", f"b{i}", "2026-03-19 12:00+00", "paid", 10) for i in (1, 2, 3)]])
    con.close()
    measure_world(path, write_journeys(tmp_path / "journeys"))
    con = duckdb.connect(path)
    yield con
    con.close()


def test_trend_pools_only_send_days_that_reached_the_day(trend_warehouse):
    trend = load_report_data(trend_warehouse, AS_OF, "USD").frames["trend"]
    assert trend["sent"].tolist() == [20, 20, 20, 10, 10, 10, 10, 10]  # B stops after day 2
    assert trend["at_risk"].tolist() == [20, 19, 17, 8, 8, 8, 7, 7]
    # By hand: survival 19/20, x 17/19, x 14/17 = 0.70, flat, day 5 x 7/8 = 0.6125.
    expected = [0.05, 0.15, 0.30, 0.30, 0.30, 0.3875, 0.3875, 0.3875]
    assert trend["converted_share"].tolist() == pytest.approx(expected, abs=1e-12)
    # The old pooled sum gave (2 + 4) / 20 = 30 % on day 2 but 2 / 10 = 20 % on day 3: a falling curve.
    assert trend["converted_share"].is_monotonic_increasing


def test_trend_of_a_send_day_with_no_conversions_stays_flat_not_zero(tmp_path):
    """The reported bug: the oldest send day alone reaches day 7 and converted nobody."""
    path = str(tmp_path / "wh.duckdb")
    con = duckdb.connect(path)
    create_inputs(con)
    add_sends(con, [(f"a{i}", "j_welcome", "w1", None, f"a{i}", "sent", "2026-03-05 10:00+00") for i in range(4)]
              + [(f"b{i}", "j_welcome", "w1", None, f"b{i}", "sent", "2026-03-15 10:00+00") for i in range(4)])
    add_orders(con, [("ob0", "b0", "2026-03-16 12:00+00", "paid", 10)])
    con.close()
    measure_world(path, write_journeys(tmp_path / "journeys"))
    con = duckdb.connect(path)
    trend = load_report_data(con, AS_OF, "USD").frames["trend"]
    con.close()
    # Day 1: 1 of 8 at risk. Days 5..7 only have send day A (nobody converts): the share stays 12.5 %.
    assert trend["converted_share"].tolist() == pytest.approx([0, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125, 0.125])


def test_ltv_axis_is_log_when_one_segment_dominates_and_every_bar_keeps_a_share():
    ltv = pd.DataFrame({"dimension": ["value_segment"] * 4 + ["all"],
                        "dimension_value": ["vip", "regular", "occasional", "new", "all"],
                        "users": [5, 50, 200, 40, 295], "ltv_per_customer": [9000.0, 240.0, 12.5, None, 310.0],
                        "ltv_per_user": [0.0] * 5})
    fig = charts.ltv_chart(ltv, "EUR")
    axis = fig.layout.xaxis
    assert axis.type == "log" and "EUR" in axis.title.text
    low, high = axis.range
    # Share of the plot width the smallest bar (12.5) covers on this axis: at least a sixth.
    assert (math.log10(12.5) - low) / (high - low) > 1 / 6
    assert list(fig.data[0].y) == ["occasional", "regular", "all customers", "vip"]  # sorted, "new" has no LTV
    assert list(fig.data[0].text) == ["12.50 EUR", "240.00 EUR", "310.00 EUR", "9,000.00 EUR"]
    unsegmented = ltv.assign(dimension_value=["vip", "regular", None, "new", "all"])
    assert "no segment" in charts.ltv_chart(unsegmented, "EUR").data[0].y  # users outside the value family
    close = ltv.assign(ltv_per_customer=[300.0, 240.0, 90.0, None, 200.0])
    assert charts.ltv_chart(close, "EUR").layout.xaxis.type != "log"  # 300 / 90 < 10: a linear axis reads fine


def test_bounce_rate_without_delivery_events_is_not_available(tmp_path):
    path = str(tmp_path / "wh.duckdb")
    con = duckdb.connect(path)
    create_inputs(con)
    add_sends(con, [(f"m{i}", "j_cart", "c1", None, f"u{i}", "sent", "2026-03-10 13:00+00") for i in range(4)])
    con.close()
    measure_world(path, write_journeys(tmp_path / "journeys"))
    con = duckdb.connect(path)
    cards = dict((label, value) for label, value, _ in key_figures(load_report_data(con, AS_OF, "USD")))
    assert cards["Bounce rate"] == NO_DELIVERY_EVENTS == "n/a — no delivery events"
    add_delivery(con, [("m0", "bounce", "2026-03-10 14:00+00"), ("m1", "delivered", "2026-03-10 14:00+00")])
    con.close()
    measure_world(path, write_journeys(tmp_path / "journeys"))
    con = duckdb.connect(path)
    cards = dict((label, value) for label, value, _ in key_figures(load_report_data(con, AS_OF, "USD")))
    con.close()
    assert cards["Bounce rate"] == "25.0 %"  # 1 bounce of 4 sent


def test_reporting_currency_is_the_dbt_var(tmp_path):
    configured = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]["reporting_currency"]
    assert reporting_currency() == configured.upper()
    project = tmp_path / "dbt_project.yml"
    project.write_text("vars:\n  reporting_currency: eur\n")
    assert reporting_currency(project) == "EUR"
    project.write_text("vars:\n  reporting_currency: euro\n")
    with pytest.raises(ValueError, match=r"dbt_project.yml: vars.reporting_currency is 'euro'; expected an ISO 4217"):
        reporting_currency(project)


def test_report_marts_match_the_dbt_project(dbt_manifest):
    """The inputs the report names when a section is not built are the marts' dbt parents, every model
    of models/marts/report is read by the report, and the crmflow_report exposure lists exactly them."""
    import json

    manifest = json.loads(dbt_manifest.read_text())
    nodes = {**manifest["nodes"], **manifest["sources"]}
    folder = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"
              and n["original_file_path"].startswith("dbt_project/models/marts/report/")}
    assert sorted(folder) == sorted(REPORT_MODELS) and len(REPORT_MODELS) == 14
    for mart in {m.relation: m for m in [*QUERIES.values(), *FIGURES.values()]}.values():
        if mart.relation in folder:
            parents = {nodes[p]["name"] for p in folder[mart.relation]["depends_on"]["nodes"]}
            assert parents == set(mart.needs), mart.relation
            assert folder[mart.relation]["config"]["materialized"] == "table"
    exposure = manifest["exposures"]["exposure.crmflow.crmflow_report"]
    assert sorted(nodes[p]["name"] for p in exposure["depends_on"]["nodes"]) == sorted(REPORT_MODELS)


def test_a_mart_whose_inputs_exist_but_was_not_built_is_named(tmp_path):
    """Which marts a build can select, and the note of a section whose mart is missing: its missing
    input first, else the mart itself."""
    from crmflow.measurement.tables import MEASUREMENT_MODELS
    from crmflow.report.data import buildable_report_models
    from crmflow.warehouse import open_warehouse

    with open_warehouse(tmp_path / "wh.duckdb") as wh:
        create_inputs(wh)  # migrations (delivery_events) and the measurement models' inputs, no marts
        wh.execute("create table kpi_ltv (dimension varchar, dimension_value varchar, users bigint, "
                   "ltv_per_customer double, ltv_per_user double)")
        assert buildable_report_models(wh) == ["rpt_ltv", "rpt_delivery"]
        assert buildable_report_models(wh, built=MEASUREMENT_MODELS) == [
            "rpt_ltv", "rpt_journey_funnel", "rpt_trend", "rpt_delivery", "rpt_journey_figures"]
        data = load_report_data(wh, AS_OF, "USD")
    assert data.missing_for("ltv") == ["rpt_ltv"]  # its input is there: the mart was not built
    assert data.missing_for("tiers") == ["customer_value_tier"]  # not rpt_tiers: the input comes first
    assert data.missing_for("uplift") == []  # migration 45 creates it: there, no rows
    assert all(frame is None for frame in data.frames.values())
    assert data.figures.pop("journeys_measured") == data.figures.pop("journeys_significant") == 0
    assert set(data.figures.values()) == {None}
