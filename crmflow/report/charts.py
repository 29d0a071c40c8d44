"""Plotly figures for the report, one builder per chart, all from small aggregate frames.

Colours are fixed per meaning (a lifecycle stage, a tier, treated vs holdout) so the same thing has
the same colour in every chart.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmflow.report import formats
from crmflow.report.formats import COUNT_AXIS_D3, COUNT_D3, MONEY_D3, PERCENT_D3

ACCENT = "#3b5bdb"
MUTED = "#adb5bd"
GOOD = "#2f9e44"
BAD = "#e03131"
STAGE_COLOURS = {"prospect": "#adb5bd", "new": "#74c0fc", "active": "#2f9e44", "silent": "#fab005",
                 "churned": "#e03131", "reactivated": "#7048e8"}
STAGE_ORDER = list(STAGE_COLOURS)
GRADE_COLOURS = {"high": "#2f9e44", "medium": "#fab005", "low": "#adb5bd", "A": "#2b8a3e", "B": "#69db7c",
                 "C": "#fab005", "D": "#ff922b", "E": "#e03131", "unscored": "#dee2e6"}
GRADE_ORDER = {g: i for i, g in enumerate(GRADE_COLOURS)}
FUNNEL_COLOURS = ["#364fc7", "#4c6ef5", "#748ffc", "#91a7ff", "#2f9e44"]
OUTCOME_COLOURS = {"delivered": "#4c6ef5", "opened": "#15aabf", "clicked": "#2f9e44",
                   "bounced / failed": "#e03131", "unsubscribed / spam": "#f08c00"}
SERIES = ["#3b5bdb", "#f08c00", "#2f9e44", "#e03131", "#7048e8", "#15aabf", "#e64980", "#868e96"]
# LTV bars switch to a log axis when the largest segment is this many times the smallest, so the
# small segments stay visible instead of collapsing to a sliver next to the largest.
LTV_LOG_RATIO = 10.0

COUNT_AXIS = {"tickformat": COUNT_AXIS_D3, "rangemode": "tozero"}
PERCENT_AXIS = {"tickformat": PERCENT_D3, "ticksuffix": " %", "rangemode": "tozero"}


def money_axis(title: str, currency: str) -> dict[str, object]:
    return {"title": f"{title} ({currency})", "tickformat": MONEY_D3, "rangemode": "tozero"}


def _layout(fig: go.Figure, height: int = 360, **kwargs: object) -> go.Figure:
    kwargs.setdefault("margin", {"l": 60, "r": 20, "t": 30, "b": 50})
    fig.update_layout(template="plotly_white", height=height,
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
                      legend={"orientation": "h", "y": -0.18}, colorway=SERIES, **kwargs)
    return fig


def lifecycle_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    stages = [s for s in STAGE_ORDER if s in set(df["lifecycle_stage"])]
    stages += sorted(set(df["lifecycle_stage"]) - set(stages))
    if df["week"].nunique() == 1:
        # History of a single week (a new warehouse): bars read better than one dot per stage.
        current = df.set_index("lifecycle_stage").loc[stages]
        fig.add_trace(go.Bar(x=stages, y=current["users"], text=[formats.count(u) for u in current["users"]],
                             textposition="auto", marker_color=[STAGE_COLOURS.get(s, MUTED) for s in stages],
                             showlegend=False, hovertemplate=f"%{{x}}: {formats.count_hover('y')}<extra></extra>"))
        return _layout(fig, yaxis={"title": "customers", **COUNT_AXIS})
    for stage in stages:
        part = df[df["lifecycle_stage"] == stage]
        fig.add_trace(go.Scatter(x=part["week"], y=part["users"], name=stage, mode="lines+markers",
                                 stackgroup="stages", line={"color": STAGE_COLOURS.get(stage, MUTED)},
                                 hovertemplate=f"{stage}: {formats.count_hover('y')}<extra></extra>"))
    return _layout(fig, yaxis={"title": "customers", **COUNT_AXIS})


def tiers_chart(df: pd.DataFrame) -> go.Figure:
    types = sorted(df["customer_type"].dropna().unique()) or ["all"]
    fig = make_subplots(rows=1, cols=len(types), subplot_titles=[f"{t}" for t in types])
    for i, customer_type in enumerate(types, start=1):
        part = df[df["customer_type"] == customer_type]
        part = part.sort_values("grade", key=lambda g: g.map(GRADE_ORDER.get).fillna(len(GRADE_ORDER)))
        fig.add_trace(go.Bar(x=part["grade"], y=part["users"], showlegend=False,
                             marker_color=[GRADE_COLOURS.get(g, MUTED) for g in part["grade"]],
                             text=[formats.count(u) for u in part["users"]], textposition="auto",
                             hovertemplate=f"%{{x}}: {formats.count_hover('y')}<extra></extra>"), row=1, col=i)
    fig.update_yaxes(**COUNT_AXIS)
    return _layout(fig, yaxis_title="customers", margin={"l": 60, "r": 20, "t": 60, "b": 50})


def segments_chart(df: pd.DataFrame) -> go.Figure:
    df = df.sort_values(["segment_family", "users"], ascending=[False, True])
    fig = go.Figure()
    for i, family in enumerate(sorted(df["segment_family"].unique())):
        part = df[df["segment_family"] == family]
        fig.add_trace(go.Bar(y=family + ": " + part["segment"], x=part["users"], orientation="h", name=family,
                             marker_color=SERIES[i % len(SERIES)],
                             hovertemplate=f"%{{y}}: {formats.count_hover('x')}<extra></extra>"))
    return _layout(fig, height=max(320, 22 * len(df) + 80), xaxis={"title": "customers", **COUNT_AXIS},
                   margin={"l": 200, "r": 20, "t": 20, "b": 50})


def cohort_chart(df: pd.DataFrame) -> go.Figure:
    grid = df.pivot_table(index="cohort_month", columns="months_since_registration", values="retention_rate")
    labels = [pd.Timestamp(m).strftime("%Y-%m") for m in grid.index]
    fig = go.Figure(go.Heatmap(z=grid.to_numpy() * 100, x=[str(c) for c in grid.columns], y=labels,
                               colorscale="Blues", zmin=0, zmax=100, colorbar={"title": "%"},
                               hovertemplate=f"cohort %{{y}}, month %{{x}}: %{{z:{PERCENT_D3}}} %<extra></extra>"))
    return _layout(fig, height=max(320, 26 * len(labels) + 90), xaxis_title="months since registration",
                   yaxis={"autorange": "reversed", "type": "category"})


def arpu_chart(arpu: pd.DataFrame, currency: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=arpu["date_day"], y=arpu["arpu_7d"], name="ARPU (7 d)", line={"color": ACCENT},
                               hovertemplate=f"%{{x|%Y-%m-%d}}: {formats.money_hover('y', currency)}<extra></extra>"))
    return _layout(fig, showlegend=False, yaxis=money_axis("ARPU, trailing 7 days", currency))


def ltv_labels(ltv: pd.DataFrame) -> list[str]:
    """Bar names: the segment, 'all customers' for the total, 'no segment' for users outside the family."""
    return ["all customers" if d == "all" else "no segment" if pd.isna(v) else str(v)
            for d, v in zip(ltv["dimension"], ltv["dimension_value"], strict=True)]


def ltv_with_estimate(ltv: pd.DataFrame) -> pd.DataFrame:
    """Rows with a positive LTV (a bar can show them); the others have no estimate yet."""
    return ltv[ltv["ltv_per_customer"].fillna(0) > 0]


def ltv_chart(ltv: pd.DataFrame, currency: str) -> go.Figure:
    """Sorted horizontal bars, each labelled with its value; a log axis when one segment dwarfs the
    others (LTV_LOG_RATIO), with the range chosen so the smallest bar keeps a readable length."""
    bars = ltv_with_estimate(ltv).sort_values("ltv_per_customer")
    labels = ltv_labels(bars)
    values = bars["ltv_per_customer"].astype(float)
    fig = go.Figure(go.Bar(
        y=labels, x=values, orientation="h", text=[formats.money(v, currency) for v in values],
        textposition="outside", cliponaxis=False, customdata=bars["users"],
        marker_color=[MUTED if d == "all" else GOOD for d in bars["dimension"]],
        hovertemplate=f"%{{y}}: {formats.money_hover('x', currency)} per paying customer "
                      f"(%{{customdata:{COUNT_D3}}} users)<extra></extra>"))
    low, high = float(values.min()), float(values.max())
    if high / low > LTV_LOG_RATIO:
        # The axis starts 0.3 x the span below the smallest value (its bar gets about a fifth of the
        # width) and leaves 15 % on the right for the value labels.
        span = math.log10(high) - math.log10(low)
        start = math.log10(low) - 0.3 * span
        end = math.log10(high) + 0.15 * (math.log10(high) - start) / 0.85
        axis = {"type": "log", "tickformat": ",", "title": f"LTV per paying customer ({currency}, log scale)",
                "range": [start, end]}
    else:
        axis = money_axis("LTV per paying customer", currency) | {"range": [0, high * 1.3]}
    return _layout(fig, height=max(240, 34 * len(bars) + 110), showlegend=False, xaxis=axis,
                   margin={"l": 140, "r": 30, "t": 20, "b": 50})


def funnel_chart(df: pd.DataFrame) -> go.Figure:
    row = df.iloc[0]
    users = [row["registered_users"], row["first_order_users"], row["repeat_order_users"]]
    text = [f"{formats.count(u)} ({formats.percent(u / users[0] if users[0] else None)})" for u in users]
    fig = go.Figure(go.Funnel(y=["registered", "first order", "repeat order"], x=users, text=text,
                              textinfo="text", marker={"color": FUNNEL_COLOURS[:3]},
                              hovertemplate="%{y}: %{text}<extra></extra>"))
    return _layout(fig, height=300, margin={"l": 120, "r": 20, "t": 20, "b": 20})


def journey_funnel_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for colour, stage in zip(FUNNEL_COLOURS, ["sent", "delivered", "opened", "clicked", "converted"], strict=True):
        fig.add_trace(go.Bar(x=df["journey_id"], y=df[stage], name=stage, marker_color=colour,
                             hovertemplate=f"%{{x}} {stage}: {formats.count_hover('y')}<extra></extra>"))
    return _layout(fig, barmode="group", yaxis={"title": "messages", **COUNT_AXIS})


def uplift_chart(df: pd.DataFrame) -> go.Figure:
    """Uplift in percentage points with its interval; journeys without enough data are not drawn."""
    ok = df[df["status"] == "ok"].sort_values("uplift_abs")
    colours = [GOOD if s and u > 0 else BAD if s else MUTED for s, u in zip(ok["significant"], ok["uplift_abs"],
                                                                          strict=True)]
    fig = go.Figure(go.Scatter(
        x=ok["uplift_abs"] * 100, y=ok["journey_id"], mode="markers", marker={"size": 12, "color": colours},
        error_x={"type": "data", "symmetric": False, "array": (ok["uplift_ci_high"] - ok["uplift_abs"]) * 100,
                 "arrayminus": (ok["uplift_abs"] - ok["uplift_ci_low"]) * 100, "color": "#495057"},
        hovertemplate=f"%{{y}}: %{{x:+{PERCENT_D3}}} pp<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#868e96", "dash": "dash"})
    return _layout(fig, height=max(240, 40 * len(ok) + 100), xaxis={"title": "uplift, percentage points (95 % interval)", "tickformat": PERCENT_D3},
                   margin={"l": 160, "r": 20, "t": 20, "b": 50})


def trend_chart(df: pd.DataFrame) -> go.Figure:
    """The right-censored cumulative share (crmflow.report.data "trend"); hover names the sends behind
    each day, which shrink with the day because young sends have not reached it yet."""
    fig = go.Figure()
    for i, (journey, part) in enumerate(df.groupby("journey_id", sort=True)):
        fig.add_trace(go.Scatter(
            x=part["days_since_send"], y=part["converted_share"] * 100, name=str(journey), mode="lines+markers",
            line={"color": SERIES[i % len(SERIES)]}, customdata=part[["sent", "send_days"]].to_numpy(),
            hovertemplate=f"{journey}, day %{{x}}: {formats.percent_hover('y')}<br>from "
                          f"%{{customdata[0]:{COUNT_D3}}} sends on %{{customdata[1]:{COUNT_D3}}} send days"
                          "<extra></extra>"))
    return _layout(fig, xaxis={"title": "days since send", "dtick": 1},
                   yaxis={"title": "converted, cumulative", **PERCENT_AXIS})


def ab_chart(df: pd.DataFrame) -> go.Figure:
    labels = df["journey_id"] + " / " + df["step_id"]
    fig = go.Figure()
    for i, variant in enumerate(sorted(df["variant"].unique())):
        part = df[df["variant"] == variant]
        rate = part["conversion_rate"] * 100
        fig.add_trace(go.Bar(
            x=labels[part.index], y=rate, name=f"variant {variant}", marker_color=SERIES[i % len(SERIES)],
            error_y={"type": "data", "symmetric": False, "array": part["rate_ci_high"] * 100 - rate,
                     "arrayminus": rate - part["rate_ci_low"] * 100},
            hovertemplate=f"%{{x}} variant {variant}: {formats.percent_hover('y')}<extra></extra>"))
    return _layout(fig, barmode="group", yaxis={"title": "conversion (95 % interval)", **PERCENT_AXIS})


def operators_chart(df: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=["tasks", "conversion rate vs rule baseline"])
    for colour, column, name in [(ACCENT, "tasks_assigned", "assigned"), (GOOD, "tasks_handled", "handled"),
                                 (BAD, "tasks_expired", "expired")]:
        fig.add_trace(go.Bar(x=df["operator_id"], y=df[column], name=name, marker_color=colour,
                             hovertemplate=f"%{{x}} {name}: {formats.count_hover('y')}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=df["operator_id"], y=df["conversion_rate"] * 100, name="conversion",
                         marker_color="#15aabf",
                         hovertemplate=f"%{{x}} conversion: {formats.percent_hover('y')}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=df["operator_id"], y=df["baseline_conversion_rate"] * 100, name="baseline",
                             mode="markers", marker={"symbol": "line-ew-open", "size": 22, "color": "#212529"},
                             hovertemplate=f"%{{x}} baseline: {formats.percent_hover('y')}<extra></extra>"),
                  row=1, col=2)
    fig.update_yaxes(**COUNT_AXIS, row=1, col=1)
    fig.update_yaxes(**PERCENT_AXIS, row=1, col=2)
    return _layout(fig, barmode="group", margin={"l": 60, "r": 20, "t": 60, "b": 50})


def delivery_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for outcome, colour in OUTCOME_COLOURS.items():
        part = df[df["outcome"] == outcome]
        if len(part):
            fig.add_trace(go.Scatter(x=part["day"], y=part["events"], name=outcome, mode="lines+markers",
                                     line={"color": colour},
                                     hovertemplate=f"%{{x|%Y-%m-%d}} {outcome}: {formats.count_hover('y')}"
                                                   "<extra></extra>"))
    return _layout(fig, yaxis={"title": "events per day", **COUNT_AXIS})
