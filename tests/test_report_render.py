"""The HTML report: self-contained, every section present, and it draws in headless Chromium without
console errors, exceptions or network requests."""

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

# What the page reports back: rendered plotly charts and the in-page error counter.
PROBE = """{plots: document.querySelectorAll('.js-plotly-plot').length,
            drawn: Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
                p => p._fullLayout && p.querySelector('svg.main-svg')).length,
            errors: document.documentElement.getAttribute('data-render-errors'),
            empty: document.querySelectorAll('.empty').length,
            sections: document.querySelectorAll('main section').length}"""

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
create table kpi_ltv as select 'all' as dimension, 'all' as dimension_value, 20 as users, 120.5 as ltv_per_customer,
    60.2 as ltv_per_user;
create table kpi_funnel as select 'all' as acquisition_channel, 20 as registered_users, 12 as first_order_users,
    5 as repeat_order_users;
create table kpi_cohort_retention as select date '2025-12-01' + to_months(cast(c.range as integer)) as cohort_month,
    m.range as months_since_registration, 10 as cohort_size, 1.0 / (m.range + 1) as retention_rate
    from range(3) c, range(3) m where c.range + m.range < 3;
create table operator_efficiency as select 'op' || range as operator_id, 10 as tasks_assigned, 7 as tasks_handled,
    2 as tasks_converted_reported, 1 as tasks_expired, 0.7 as completion_rate, 0.3 as conversion_rate,
    0.2 as baseline_conversion_rate from range(2);
"""


def _build(tmp_path, full: bool):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    journeys = None
    if full:
        create_inputs(con)
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
    out = tmp_path / "report.html"
    _, outcome = measure_and_report(con, journeys, out, AS_OF)
    con.close()
    return outcome


def test_report_with_data_is_self_contained_and_draws_cleanly(tmp_path):
    outcome = _build(tmp_path, full=True)
    html = outcome.path.read_text(encoding="utf-8")
    assert outcome.charts == 12  # lifecycle..delivery: every section has a chart with this data
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=[\"']?https?:", html)
    assert html.count(plotly.offline.get_plotlyjs()[:400]) == 1  # plotly.js inlined exactly once
    assert "2026-03-20 00:00 UTC" in html and "not enough data" not in html.split("<main>")[0]
    page = inspect_page(outcome.path, PROBE)
    assert page.exceptions == [] and page.console_errors == [], (page.exceptions, page.console_errors)
    assert page.network == []
    assert page.evaluated == {"plots": 12, "drawn": 12, "errors": "0", "empty": 0, "sections": 12}


def test_empty_warehouse_says_no_data_yet(tmp_path):
    outcome = _build(tmp_path, full=False)
    html = outcome.path.read_text(encoding="utf-8")
    assert outcome.charts == 0
    assert html.count("No data yet") == 12
    page = inspect_page(outcome.path, PROBE)
    assert page.exceptions == [] and page.console_errors == []
    assert page.evaluated == {"plots": 0, "drawn": 0, "errors": "0", "empty": 12, "sections": 12}


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
