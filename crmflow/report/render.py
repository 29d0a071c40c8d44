"""Assemble the report: header cards, one section per chart with a plain-language caption, tables
for the uplift and A/B numbers, plotly.js inlined once so the file opens without a network."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from jinja2 import Environment

from crmflow.report import charts
from crmflow.report.data import ReportData
from crmflow.report.formats import count, money, p_value, percent, points
from crmflow.report.template import TEMPLATE

NO_DATA = "No data yet"
NO_DELIVERY_EVENTS = "n/a — no delivery events"
NOT_BUILT = "Not built yet: {tables} is not in the warehouse (run `crmflow run` or `make demo`)."


@dataclass
class Section:
    anchor: str
    title: str
    caption: str
    chart_html: str | None = None
    table: list[dict[str, str]] | None = None
    empty: str | None = None  # why there is no chart
    links: list[tuple[str, str]] | None = None  # (label, href) under the caption


class _Charts:
    """Turns figures into div+script snippets with stable ids (plotly.js itself is added once)."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure, anchor: str) -> str:
        self.count += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{anchor}",
                           config={"displaylogo": False, "responsive": True})


def _empty_note(data: ReportData, key: str, why: str) -> str:
    """Why panel `key` has no chart: its input is not built yet, else the panel's own reason."""
    missing = data.missing_for(key)
    return NOT_BUILT.format(tables=", ".join(missing)) if missing else why


def _section(data: ReportData, key: str, anchor: str, title: str, caption: str, builder: Callable[[], go.Figure],
             renderer: _Charts, why_empty: str) -> Section:
    if data.frames[key] is None:
        return Section(anchor, title, caption, empty=_empty_note(data, key, why_empty))
    return Section(anchor, title, caption, chart_html=renderer.html(builder(), anchor))


def uplift_rows(df: pd.DataFrame, currency: str) -> list[dict[str, str]]:
    return [{"journey": r.journey_id, "goal": r.goal,
             "treated": f"{percent(r.treated_rate)} of {count(r.treated_enrolments)}",
             "holdout": f"{percent(r.holdout_rate)} of {count(r.holdout_enrolments)}",
             "uplift": points(r.uplift_abs) if r.status == "ok" else "–",
             "95 % interval": f"{points(r.uplift_ci_low)} … {points(r.uplift_ci_high)}" if r.status == "ok" else "–",
             "p-value": p_value(r.p_value) if r.status == "ok" else "–",
             "incremental revenue": money(r.incremental_revenue, currency) if r.status == "ok" else "–",
             "verdict": r.note} for r in df.itertuples()]


def ab_rows(df: pd.DataFrame) -> list[dict[str, str]]:
    return [{"journey / step": f"{r.journey_id} / {r.step_id}", "variant": r.variant,
             "sent": count(r.sent), "converted": count(r.converted),
             "rate (95 % interval)": f"{percent(r.conversion_rate)} ({percent(r.rate_ci_low)} … "
                                     f"{percent(r.rate_ci_high)})",
             "vs reference": "–" if r.is_reference else
             f"{points(r.diff_vs_reference)} ({points(r.diff_ci_low)} … {points(r.diff_ci_high)})",
             "p-value": p_value(r.p_value), "verdict": r.verdict} for r in df.itertuples()]


def _ltv_section(data: ReportData, renderer: _Charts) -> Section:
    ltv, currency = data.frames["ltv"], data.currency
    caption = (f"Expected lifetime value of a paying customer per value segment, in {currency} (grey = all "
               f"customers); each bar carries its value. A log axis is used when the largest segment is more "
               f"than {charts.LTV_LOG_RATIO:.0f} times the smallest, so every segment stays visible.")
    why = "No value segment has an LTV estimate yet: it needs customers with at least one complete month after " \
          "a purchase month."
    drawable = None if ltv is None else charts.ltv_with_estimate(ltv)
    if drawable is None or drawable.empty:
        return Section("ltv", "Lifetime value by value segment", caption, empty=_empty_note(data, "ltv", why))
    unestimated = charts.ltv_labels(ltv.loc[~ltv.index.isin(drawable.index)])
    if unestimated:
        caption += f" No estimate yet (no complete month after a purchase month): {', '.join(unestimated)}."
    return Section("ltv", "Lifetime value by value segment", caption,
                   chart_html=renderer.html(charts.ltv_chart(ltv, currency), "ltv"))


def build_sections(data: ReportData, renderer: _Charts) -> list[Section]:
    f, currency = data.frames, data.currency
    as_of_day = data.as_of.strftime("%Y-%m-%d")
    no_sends = f"No journey message has been sent up to {as_of_day} (send_ledger has no sent message)."
    sections = [
        _section(data, "lifecycle", "lifecycle", "Lifecycle stages over time",
                 "How many customers were in each lifecycle stage, week by week. Growth in green and purple "
                 "(active, reactivated) is good; a growing red band (churned) needs attention.",
                 lambda: charts.lifecycle_chart(f["lifecycle"]), renderer,
                 "No customer has a lifecycle stage yet: no registration, order or activity has been ingested."),
        _section(data, "tiers", "tiers", "Value tiers and B2B grades",
                 "Individuals by value tier (high, medium, low) and business customers by grade (A best, E worst).",
                 lambda: charts.tiers_chart(f["tiers"]), renderer,
                 "No customer has a value tier or B2B grade yet: no customer has been ingested."),
        _section(data, "segments", "segments", "Segment sizes",
                 "Customers per segment; every customer is in exactly one segment of each family.",
                 lambda: charts.segments_chart(f["segments"]), renderer,
                 "No customer is in a segment yet: no customer has been ingested."),
        _section(data, "cohorts", "cohorts", "Cohort retention",
                 "Share of each registration month's customers still active N months later; darker is better.",
                 lambda: charts.cohort_chart(f["cohorts"]), renderer,
                 "No registration cohort yet: no registration has been ingested."),
        _section(data, "arpu", "arpu", "ARPU",
                 f"Revenue per active user over a trailing week, in {currency}: revenue of the 7 days divided by "
                 "the active users summed over them.",
                 lambda: charts.arpu_chart(f["arpu"], currency), renderer,
                 f"No daily KPIs in the 180 days up to {as_of_day}: no order or activity in that period."),
        _ltv_section(data, renderer),
        _section(data, "funnel", "funnel", "Customer funnel",
                 "Registered customers who placed a first order, and of those who came back for a second.",
                 lambda: charts.funnel_chart(f["funnel"]), renderer,
                 "No customer funnel yet: no registration has been ingested."),
        _section(data, "journey_funnel", "journey-funnel", "Journey funnels",
                 "Per journey: messages sent, delivered, opened, clicked and converted (a paid order credited to "
                 "the message by last-touch attribution within the journey's goal window).",
                 lambda: charts.journey_funnel_chart(f["journey_funnel"]), renderer, no_sends),
    ]
    if f["journey_funnel"] is not None:  # each journey tick writes its diagram beside the report
        sections[-1].links = [(f"{j} diagram", f"journeys/{j}.html") for j in f["journey_funnel"]["journey_id"]]
    uplift = f["uplift"]
    measured = uplift is not None and (uplift["status"] == "ok").any()
    sections.append(Section(
        "uplift", "Holdout uplift",
        "Did the journey change behaviour? Conversion of enrolled customers minus a random holdout that got "
        "nothing, with a 95 % interval: green = significantly better, grey = no clear difference. Journeys with "
        "fewer enrolments than the minimum per group say so in the table.",
        chart_html=renderer.html(charts.uplift_chart(uplift), "uplift") if measured else None,
        table=uplift_rows(uplift, currency) if uplift is not None else None,
        empty=None if measured else ("Not enough data yet for any journey: see the table." if uplift is not None
                                     else _empty_note(data, "uplift", "No journey has enrolments whose goal "
                                                      f"window is over by {as_of_day}."))))
    sections.append(_section(
        data, "trend", "trend", "Conversion in the 7 days after a send",
        "Cumulative share of messages credited with a paid order by day d after the send (day 0 = the send "
        "day). Day d uses only sends at least d + 1 days old, i.e. whose day d is over by the as-of; younger "
        "sends count for the days they have reached (a Kaplan–Meier estimate), so the curve never falls. "
        "Hover a point for the number of sends behind it.",
        lambda: charts.trend_chart(f["trend"]), renderer,
        f"No send has a complete day yet: day 0 of a send counts once its calendar day (UTC) is over, and no "
        f"message was sent before {as_of_day}."))
    ab = f["ab"]
    sections.append(Section(
        "ab", "A/B tests",
        "Conversion per variant with 95 % intervals; each variant is compared with the reference (the "
        "'control' variant, else the best one). Pick a winner only where the verdict says significant.",
        chart_html=renderer.html(charts.ab_chart(ab), "ab") if ab is not None else None,
        table=ab_rows(ab) if ab is not None else None,
        empty=None if ab is not None else _empty_note(
            data, "ab", "No journey step with A/B variants has sent messages yet.")))
    sections.append(_section(
        data, "operators", "operators", "Operator efficiency",
        "Tasks per operator (assigned, handled, expired) and the conversion of their contacts against the "
        "baseline of the same task rules.",
        lambda: charts.operators_chart(f["operators"]), renderer, "No operator tasks have been assigned yet."))
    sections.append(_section(
        data, "delivery", "delivery", "Delivery health",
        "Provider events per day over the last 30 days. Rising bounces or unsubscribes point to list quality or "
        "message fatigue.",
        lambda: charts.delivery_chart(f["delivery"]), renderer,
        f"No delivery events received yet in the 30 days up to {as_of_day} (provider webhooks land in "
        "delivery_events)."))
    return sections


def bounce_rate_text(figures: dict[str, float | int | None]) -> str:
    """0 % bounces with no delivery event at all would claim a clean list nobody has measured."""
    if not figures.get("delivery_events"):
        return NO_DELIVERY_EVENTS
    return percent(figures.get("bounce_rate"))


def key_figures(data: ReportData) -> list[tuple[str, str, str]]:
    """(label, value, hint) for the header cards."""
    g, currency = data.figures, data.currency
    measured, significant = g.get("journeys_measured"), g.get("journeys_significant")
    return [
        ("Customers", count(g.get("customers")), "registered or ordering"),
        ("Active customers", count(g.get("active_customers")), "new, active or reactivated"),
        ("Revenue, 30 days", money(g.get("revenue_30d"), currency), "paid orders"),
        ("Messages sent", count(g.get("messages_sent")), "all journeys"),
        ("Attributed revenue", money(g.get("attributed_revenue"), currency), "last-touch, in goal window"),
        ("Bounce rate", bounce_rate_text(g), "of messages sent"),
        ("Journeys with uplift", "–" if measured is None else f"{count(significant or 0)} of {count(measured)}",
         "significant vs holdout"),
    ]


def render_report(data: ReportData) -> tuple[str, int]:
    """The HTML text and the number of charts in it."""
    renderer = _Charts()
    sections = build_sections(data, renderer)
    env = Environment(autoescape=True)
    html = env.from_string(TEMPLATE).render(
        as_of=data.as_of.strftime("%Y-%m-%d %H:%M UTC"), cards=key_figures(data), sections=sections,
        chart_count=renderer.count, currency=data.currency, not_available=NO_DELIVERY_EVENTS, plotly_js=plotly.offline.get_plotlyjs(), no_data=NO_DATA)
    return html, renderer.count


def write_report(data: ReportData, out: Path) -> tuple[Path, int]:
    """Write atomically (temp file, then rename) so a reader never sees half a report."""
    html, chart_count = render_report(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out, chart_count
