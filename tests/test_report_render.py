"""The HTML report: self-contained, every section present, and it draws in headless Chromium without
console errors, exceptions or network requests; what a reader sees (notes, currency, readable LTV bars,
a trend that never falls) is checked in the rendered page."""

from __future__ import annotations

import re

import duckdb
import plotly.offline
import pytest
from helpers_measurement import (
    AS_OF,
    add_delivery,
    add_enrolments,
    add_orders_for,
    add_sends,
    create_inputs,
    write_journeys,
)
from helpers_report import inspect_page

from crmflow.report.build import measure_and_report
from crmflow.report.data import reporting_currency
from orchestration.dbt_measurement import measurement_models_runner

# What the page reports back: rendered plotly charts and the in-page error counter.
PROBE = """{plots: document.querySelectorAll('.js-plotly-plot').length,
            drawn: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
                p => p._fullLayout && p.querySelector('svg.main-svg')).length,
            errors: document.documentElement.getAttribute('data-render-errors'),
            empty: document.querySelectorAll('.empty').length,
            sections: document.querySelectorAll('main section').length}"""

# What a reader sees: the notes of empty panels, the cards, axis titles and the LTV bars' lengths.
SEEN = """(() => {
  const text = el => el ? el.textContent.replace(/\\s+/g, ' ').trim() : null;
  const titles = id => Array.from(document.querySelectorAll('#' + id + ' .xtitle, #' + id + ' .ytitle')).map(text);
  const ltv = document.getElementById('chart-ltv');
  const bars = ltv ? Array.from(ltv.querySelectorAll('.trace.bars .point path')).map(p => p.getBBox().width) : [];
  const trend = document.getElementById('chart-trend');
  return {
    notes: Object.fromEntries(Array.from(document.querySelectorAll('main section')).filter(
      s => s.querySelector('.empty')).map(s => [s.id, text(s.querySelector('.empty .why'))])),
    cards: Object.fromEntries(Array.from(document.querySelectorAll('.card')).map(
      c => [text(c.querySelector('.label')), text(c.querySelector('.value'))])),
    header: text(document.querySelector('header p')),
    arpu_titles: titles('chart-arpu'), ltv_titles: titles('chart-ltv'),
    ltv_axis: ltv ? ltv._fullLayout.xaxis.type : null,
    ltv_labels: ltv ? Array.from(ltv.querySelectorAll('.trace.bars text')).map(text) : [],
    smallest_bar_share: ltv ? Math.min(...bars) / ltv._fullLayout.xaxis._length : null,
    trend_y: trend ? trend._fullData.map(t => Array.from(t.y)) : null,
    caption_trend: text(document.querySelector('#trend .caption')),
    tier_ticks: Array.from(document.querySelectorAll('#chart-tiers .ytick text')).map(text),
  };
})()"""

MARTS = """
create table customer_profile as select 'u' || range as user_id from range(20);
create table customer_lifecycle as select 'u' || range as user_id,
    case when range < 8 then 'active' when range < 14 then 'new' else 'churned' end as lifecycle_stage from range(20);
create table customer_lifecycle_history as
    select user_id, lifecycle_stage, timestamptz '2026-01-05' as valid_from, null::timestamptz as valid_to
    from customer_lifecycle;
create table customer_value_tier as select 'u' || range as user_id,
    case when range < 15 then 'individual' else 'business' end as customer_type,
    case when range < 15 then ['high', 'medium', 'low'][range % 3 + 1] end as value_tier,
    case when range >= 15 then ['A', 'C', 'E'][range % 3 + 1] end as b2b_grade from range(20);
create table customer_segments as select 'u' || range as user_id, 'value' as segment_family,
    ['vip', 'regular'][range % 2 + 1] as segment from range(20);
create table kpi_daily as select cast(timestamp '2026-01-01' + to_days(cast(range as integer)) as date) as date_day,
    10 + range % 5 as active_users, 0 as new_users, 2 as paying_users, 2 as orders,
    cast(40 + range % 7 as decimal(18, 2)) as revenue from range(79);
create table kpi_ltv as select * from (values ('all', 'all', 20, 310.0, 60.2), ('value_segment', 'vip', 2, 9000.0, 900.0),
    ('value_segment', 'regular', 10, 240.0, 100.0), ('value_segment', 'occasional', 8, 12.5, 2.0),
    ('value_segment', 'new', 0, null, null)) t(dimension, dimension_value, users, ltv_per_customer, ltv_per_user);
create table kpi_funnel as select 'all' as acquisition_channel, 20 as registered_users, 12 as first_order_users,
    5 as repeat_order_users;
create table kpi_cohort_retention as select date '2025-12-01' + to_months(cast(c.range as integer)) as cohort_month,
    m.range as months_since_registration, 10 as cohort_size, 1.0 / (m.range + 1) as retention_rate
    from range(3) c, range(3) m where c.range + m.range < 3;
create table operator_efficiency as select 'op' || range as operator_id, 10 as tasks_assigned, 7 as tasks_handled,
    2 as tasks_converted_reported, 1 as tasks_expired, 0.7 as completion_rate, 0.3 as conversion_rate,
    0.2 as baseline_conversion_rate from range(2);
"""


def _measure_and_report(path, journeys, out):
    """Goals, the dbt measurement models (the runner `crmflow report` uses), the statistics and the report
    on the DuckDB file `path` (the caller holds no connection to it meanwhile)."""
    return measure_and_report(path, journeys, out, AS_OF, measurement_models_runner(path))


def _build(tmp_path, full: bool):
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    create_inputs(con)  # the migrations and the dbt inputs the measurement models read: no marts
    journeys = None
    if full:
        con.execute(MARTS)
        journeys = write_journeys(tmp_path / "journeys")
        add_enrolments(con, "j_cart", "t", 40, False, "2026-03-10 12:00+00")
        add_enrolments(con, "j_cart", "h", 40, True, "2026-03-10 12:00+00")
        add_orders_for(con, "t", 20, "2026-03-11 12:00+00")
        add_orders_for(con, "h", 8, "2026-03-11 12:00+00")
        add_sends(con, [(f"m{i}", "j_cart", "c1", "AB"[i % 2], f"t{i}", "sent", "2026-03-10 13:00+00")
                        for i in range(40)])
        add_delivery(con, [(f"m{i}", "delivered", "2026-03-10 14:00+00") for i in range(36)]
                     + [("m1", "bounce", "2026-03-10 14:00+00"), ("m2", "unsubscribe", "2026-03-11 14:00+00")])
    con.close()
    _, outcome = _measure_and_report(path, journeys, tmp_path / "report.html")
    return outcome


def test_report_with_data_is_self_contained_and_draws_cleanly(tmp_path):
    outcome = _build(tmp_path, full=True)
    html = outcome.path.read_text(encoding="utf-8")
    assert outcome.charts == 13  # lifecycle..delivery: every section has a chart with this data
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=[\"']?https?:", html)
    assert html.count(plotly.offline.get_plotlyjs()[:400]) == 1  # plotly.js inlined exactly once
    assert "2026-03-20 00:00 UTC" in html and "not enough data" not in html.split("<main>")[0]
    page = inspect_page(outcome.path, PROBE)
    assert page.exceptions == [] and page.console_errors == [], (page.exceptions, page.console_errors)
    assert page.network == []
    assert page.evaluated == {"plots": 13, "drawn": 13, "errors": "0", "empty": 0, "sections": 13}


def test_what_a_reader_sees_with_data(tmp_path):
    """Currency on every money figure and axis, one number format, LTV bars all visible, trend never falls."""
    outcome = _build(tmp_path, full=True)
    page = inspect_page(outcome.path, SEEN)
    assert page.exceptions == [] and page.console_errors == [], (page.exceptions, page.console_errors)
    seen, currency = page.evaluated, reporting_currency()
    assert f"money in {currency}" in seen["header"]
    # kpi_daily 02-19..03-20: 30 days of 40 + range % 7 (range 49..78) = 1,200 + 85.
    assert seen["cards"]["Revenue, 30 days"] == f"1,285.00 {currency}"
    assert seen["cards"]["Attributed revenue"] == f"200.00 {currency}"  # 20 orders of 10.00
    assert seen["cards"]["Bounce rate"] == "2.5 %"  # 1 bounce of 40 sent, one decimal
    assert any(currency in t for t in seen["arpu_titles"]) and any(currency in t for t in seen["ltv_titles"])
    # 9,000 vs 12.50: a log axis, sorted bars labelled in the currency, the smallest >= 15 % of the width.
    assert seen["ltv_axis"] == "log"
    assert seen["ltv_labels"] == [f"12.50 {currency}", f"240.00 {currency}", f"310.00 {currency}",
                                  f"9,000.00 {currency}"]
    assert seen["smallest_bar_share"] >= 0.15, seen["smallest_bar_share"]
    assert "day d uses only sends at least d + 1 days old" in seen["caption_trend"].lower()
    for curve in seen["trend_y"]:
        assert curve == sorted(curve) and curve[-1] > 0, curve
    # A 0..2 count axis ticks at halves: they must print as 0.5, 1.5, not repeat 1 and 2.
    assert len(seen["tier_ticks"]) > 2 and len(set(seen["tier_ticks"])) == len(seen["tier_ticks"]), seen["tier_ticks"]
    html = outcome.path.read_text(encoding="utf-8")
    assert "No estimate yet (no complete month after a purchase month): new." in html
    assert f"120.00 {currency}" in html  # uplift table: incremental revenue in the currency


def test_empty_warehouse_says_no_data_yet(tmp_path):
    outcome = _build(tmp_path, full=False)
    html = outcome.path.read_text(encoding="utf-8")
    assert outcome.charts == 0
    assert html.count("No data yet") == 13
    page = inspect_page(outcome.path, f"{{probe: {PROBE}, seen: {SEEN}}}")
    assert page.exceptions == [] and page.console_errors == []
    assert page.evaluated["probe"] == {"plots": 0, "drawn": 0, "errors": "0", "empty": 13, "sections": 13}
    seen = page.evaluated["seen"]
    # Measuring applied the migrations, so crmflow's own delivery_events exists (empty); the dbt marts do not.
    assert seen["notes"]["delivery"] == ("No delivery events received yet in the 30 days up to 2026-03-20 "
                                         "(provider webhooks land in delivery_events).")
    assert seen["notes"]["ltv"].endswith("Not built yet: kpi_ltv is not in the warehouse (run `crmflow run` or "
                                         "`make demo`).")
    assert seen["cards"]["Bounce rate"] == "n/a — no delivery events"


def test_empty_ish_warehouse_says_why_each_panel_is_empty(tmp_path):
    """Every table exists but holds no rows (a fresh install after its first run): each panel names its
    own reason, in the browser, and nothing claims a measured zero."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    create_inputs(con)
    con.execute(MARTS)
    for table in ("customer_profile", "customer_lifecycle", "customer_lifecycle_history", "customer_value_tier",
                  "customer_segments", "kpi_daily", "kpi_ltv", "kpi_funnel", "kpi_cohort_retention",
                  "operator_efficiency"):
        con.execute(f"delete from {table}")
    con.close()
    out = tmp_path / "report.html"
    _measure_and_report(tmp_path / "wh.duckdb", write_journeys(tmp_path / "journeys"), out)
    page = inspect_page(out, SEEN)
    assert page.exceptions == [] and page.console_errors == [], (page.exceptions, page.console_errors)
    assert page.evaluated["notes"] == {
        "lifecycle": "No customer has a lifecycle stage yet: no registration, order or activity has been ingested.",
        "tiers": "No customer has a value tier or B2B grade yet: no customer has been ingested.",
        "segments": "No customer is in a segment yet: no customer has been ingested.",
        "cohorts": "No registration cohort yet: no registration has been ingested.",
        "arpu": "No daily KPIs in the 180 days up to 2026-03-20: no order or activity in that period.",
        "ltv": "No value segment has an LTV estimate yet: it needs customers with at least one complete month "
               "after a purchase month.",
        "funnel": "No customer funnel yet: no registration has been ingested.",
        "journey-funnel": "No journey message has been sent up to 2026-03-20 (send_ledger has no sent message).",
        "uplift": "No journey has enrolments whose goal window is over by 2026-03-20.",
        "trend": "No send has a complete day yet: day 0 of a send counts once its calendar day (UTC) is over, "
                 "and no message was sent before 2026-03-20.",
        "ab": "No journey step with A/B variants has sent messages yet.",
        "operators": "No operator tasks have been assigned yet.",
        "delivery": "No delivery events received yet in the 30 days up to 2026-03-20 (provider webhooks land in "
                    "delivery_events).",
    }
    cards = page.evaluated["cards"]
    assert cards["Bounce rate"] == "n/a — no delivery events"
    assert cards["Customers"] == "0" and cards["Revenue, 30 days"] == "–"  # no day in kpi_daily: no sum


def test_the_browser_check_catches_errors(tmp_path):
    """The harness itself: a page that throws and logs an error must be reported."""
    page_file = tmp_path / "broken.html"
    page_file.write_text("<html><body><script>console.error('bad thing');</script>"
                         "<script>undefinedFunction();</script></body></html>")
    page = inspect_page(page_file, "1")
    assert any("bad thing" in e for e in page.console_errors)
    assert any("undefinedFunction" in e for e in page.exceptions)


@pytest.mark.parametrize("needle", ["Holdout uplift", "A/B tests", "Delivery health", "Operator efficiency"])
def test_sections_are_titled(tmp_path, needle):
    outcome = _build(tmp_path, full=False)
    assert needle in outcome.path.read_text(encoding="utf-8")
