"""Assemble the report: header cards, one section per chart with a plain-language caption, tables
for the uplift and A/B numbers, plotly.js inlined once so the file opens without a network."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment

from crmflow.report import charts
from crmflow.report.data import ReportData
from crmflow.report.template import TEMPLATE

NO_DATA = "No data yet"


@dataclass
class Section:
    anchor: str
    title: str
    caption: str
    chart_html: str | None = None
    table: list[dict[str, str]] | None = None
    empty: str | None = None  # why there is no chart


def _pct(value: object, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:.{digits}f} %"


def _pp(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value * 100:+.1f} pp"


def _num(value: object, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _money(value: object) -> str:
    """Compact for the cards: 198.6k, 1.25M."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= limit:
            scale = limit if suffix != "k" else 1e3
            return f"{value / scale:,.1f}{suffix}"
    return f"{value:,.2f}"


def _p(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


class _Charts:
    """Turns figures into div+script snippets with stable ids (plotly.js itself is added once)."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure, anchor: str) -> str:
        self.count += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{anchor}",
                           config={"displaylogo": False, "responsive": True})


def _section(anchor: str, title: str, caption: str, frame: pd.DataFrame | None, builder: Callable[[], go.Figure],
             renderer: _Charts, empty: str) -> Section:
    if frame is None:
        return Section(anchor, title, caption, empty=empty)
    return Section(anchor, title, caption, chart_html=renderer.html(builder(), anchor))


def uplift_rows(df: pd.DataFrame) -> list[dict[str, str]]:
    return [{"journey": r.journey_id, "goal": r.goal,
             "treated": f"{_pct(r.treated_rate)} of {_num(r.treated_enrolments)}",
             "holdout": f"{_pct(r.holdout_rate)} of {_num(r.holdout_enrolments)}",
             "uplift": _pp(r.uplift_abs) if r.status == "ok" else "–",
             "95 % interval": f"{_pp(r.uplift_ci_low)} … {_pp(r.uplift_ci_high)}" if r.status == "ok" else "–",
             "p-value": _p(r.p_value) if r.status == "ok" else "–",
             "incremental revenue": _num(r.incremental_revenue, 2) if r.status == "ok" else "–",
             "verdict": r.note} for r in df.itertuples()]


def ab_rows(df: pd.DataFrame) -> list[dict[str, str]]:
    return [{"journey / step": f"{r.journey_id} / {r.step_id}", "variant": r.variant,
             "sent": _num(r.sent), "converted": _num(r.converted),
             "rate (95 % interval)": f"{_pct(r.conversion_rate)} ({_pct(r.rate_ci_low)} … {_pct(r.rate_ci_high)})",
             "vs reference": "–" if r.is_reference else
             f"{_pp(r.diff_vs_reference)} ({_pp(r.diff_ci_low)} … {_pp(r.diff_ci_high)})",
             "p-value": _p(r.p_value), "verdict": r.verdict} for r in df.itertuples()]


def build_sections(data: ReportData, renderer: _Charts) -> list[Section]:
    f = data.frames
    wait = "This fills in after the pipeline has run."
    journeys_wait = "No journey message has been sent yet (or the measurement step has not run)."
    sections = [
        _section("lifecycle", "Lifecycle stages over time",
                 "How many customers were in each lifecycle stage, week by week. Growth in green and purple "
                 "(active, reactivated) is good; a growing red band (churned) needs attention.",
                 f["lifecycle"], lambda: charts.lifecycle_chart(f["lifecycle"]), renderer, wait),
        _section("tiers", "Value tiers and B2B grades",
                 "Individuals by value tier (high, medium, low) and business customers by grade (A best, E worst).",
                 f["tiers"], lambda: charts.tiers_chart(f["tiers"]), renderer, wait),
        _section("segments", "Segment sizes",
                 "Customers per segment; every customer is in exactly one segment of each family.",
                 f["segments"], lambda: charts.segments_chart(f["segments"]), renderer, wait),
        _section("cohorts", "Cohort retention",
                 "Share of each registration month's customers still active N months later; darker is better.",
                 f["cohorts"], lambda: charts.cohort_chart(f["cohorts"]), renderer, wait),
        _section("arpu", "ARPU and lifetime value",
                 "Revenue per active user over a trailing week (left) and expected lifetime value of a paying "
                 "customer per value segment (right, grey = all customers).",
                 f["arpu"], lambda: charts.arpu_chart(f["arpu"], f["ltv"]), renderer, wait),
        _section("funnel", "Customer funnel",
                 "Registered customers who placed a first order, and of those who came back for a second.",
                 f["funnel"], lambda: charts.funnel_chart(f["funnel"]), renderer, wait),
        _section("journey-funnel", "Journey funnels",
                 "Per journey: messages sent, delivered, opened, clicked and converted (a paid order credited to "
                 "the message by last-touch attribution within the journey's goal window).",
                 f["journey_funnel"], lambda: charts.journey_funnel_chart(f["journey_funnel"]), renderer,
                 journeys_wait),
    ]
    uplift = f["uplift"]
    measured = uplift is not None and (uplift["status"] == "ok").any()
    sections.append(Section(
        "uplift", "Holdout uplift",
        "Did the journey change behaviour? Conversion of enrolled customers minus a random holdout that got "
        "nothing, with a 95 % interval: green = significantly better, grey = no clear difference. Journeys with "
        "fewer enrolments than the minimum per group say so in the table.",
        chart_html=renderer.html(charts.uplift_chart(uplift), "uplift") if measured else None,
        table=uplift_rows(uplift) if uplift is not None else None,
        empty=None if measured else ("Not enough data yet for any journey: see the table." if uplift is not None
                                     else "No journey has enrolments whose goal window is over.")))
    sections.append(_section(
        "trend", "Conversion in the 7 days after a send",
        "Cumulative share of messages credited with a paid order by day N after the send (day 0 = the send day).",
        f["trend"], lambda: charts.trend_chart(f["trend"]), renderer, journeys_wait))
    ab = f["ab"]
    sections.append(Section(
        "ab", "A/B tests",
        "Conversion per variant with 95 % intervals; each variant is compared with the reference (the "
        "'control' variant, else the best one). Pick a winner only where the verdict says significant.",
        chart_html=renderer.html(charts.ab_chart(ab), "ab") if ab is not None else None,
        table=ab_rows(ab) if ab is not None else None,
        empty=None if ab is not None else "No journey step with A/B variants has sent messages yet."))
    sections.append(_section(
        "operators", "Operator efficiency",
        "Tasks per operator (assigned, handled, expired) and the conversion of their contacts against the "
        "baseline of the same task rules.",
        f["operators"], lambda: charts.operators_chart(f["operators"]), renderer,
        "No operator tasks have been assigned yet."))
    sections.append(_section(
        "delivery", "Delivery health",
        "Provider events per day over the last 30 days. Rising bounces or unsubscribes point to list quality or "
        "message fatigue.",
        f["delivery"], lambda: charts.delivery_chart(f["delivery"]), renderer,
        "No delivery events (webhooks) have arrived yet."))
    return sections


def key_figures(data: ReportData) -> list[tuple[str, str, str]]:
    """(label, value, hint) for the header cards."""
    g = data.figures
    measured, significant = g.get("journeys_measured"), g.get("journeys_significant")
    return [
        ("Customers", _num(g.get("customers")), "registered or ordering"),
        ("Active customers", _num(g.get("active_customers")), "new, active or reactivated"),
        ("Revenue, 30 days", _money(g.get("revenue_30d")), "paid orders"),
        ("Messages sent", _num(g.get("messages_sent")), "all journeys"),
        ("Attributed revenue", _money(g.get("attributed_revenue")), "last-touch, in goal window"),
        ("Bounce rate", _pct(g.get("bounce_rate"), 2), "of messages sent"),
        ("Journeys with uplift", "–" if measured is None else f"{significant or 0} of {measured}",
         "significant vs holdout"),
    ]


def render_report(data: ReportData) -> tuple[str, int]:
    """The HTML text and the number of charts in it."""
    renderer = _Charts()
    sections = build_sections(data, renderer)
    env = Environment(autoescape=True)
    html = env.from_string(TEMPLATE).render(
        as_of=data.as_of.strftime("%Y-%m-%d %H:%M UTC"), cards=key_figures(data), sections=sections,
        chart_count=renderer.count, plotly_js=plotly.offline.get_plotlyjs(), no_data=NO_DATA)
    return html, renderer.count


def write_report(data: ReportData, out: Path) -> tuple[Path, int]:
    """Write atomically (temp file, then rename) so a reader never sees half a report."""
    html, chart_count = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out, chart_count
