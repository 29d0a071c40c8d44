"""Plotly figures for the report, one builder per chart, all from small aggregate frames.

Colours are fixed per meaning (a lifecycle stage, a tier, treated vs holdout) so the same thing has
the same colour in every chart.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
        fig.add_trace(go.Bar(x=stages, y=current["users"], text=current["users"], textposition="auto",
                             marker_color=[STAGE_COLOURS.get(s, MUTED) for s in stages], showlegend=False))
        return _layout(fig, yaxis_title="customers")
    for stage in stages:
        part = df[df["lifecycle_stage"] == stage]
        fig.add_trace(go.Scatter(x=part["week"], y=part["users"], name=stage, mode="lines+markers",
                                 stackgroup="stages", line={"color": STAGE_COLOURS.get(stage, MUTED)}))
    return _layout(fig, yaxis_title="customers")


def tiers_chart(df: pd.DataFrame) -> go.Figure:
    types = sorted(df["customer_type"].dropna().unique()) or ["all"]
    fig = make_subplots(rows=1, cols=len(types), subplot_titles=[f"{t}" for t in types])
    for i, customer_type in enumerate(types, start=1):
        part = df[df["customer_type"] == customer_type]
        part = part.sort_values("grade", key=lambda g: g.map(GRADE_ORDER.get).fillna(len(GRADE_ORDER)))
        fig.add_trace(go.Bar(x=part["grade"], y=part["users"], showlegend=False,
                             marker_color=[GRADE_COLOURS.get(g, MUTED) for g in part["grade"]],
                             text=part["users"], textposition="auto"), row=1, col=i)
    return _layout(fig, yaxis_title="customers", margin={"l": 60, "r": 20, "t": 60, "b": 50})


def segments_chart(df: pd.DataFrame) -> go.Figure:
    df = df.sort_values(["segment_family", "users"], ascending=[False, True])
    fig = go.Figure()
    for i, family in enumerate(sorted(df["segment_family"].unique())):
        part = df[df["segment_family"] == family]
        fig.add_trace(go.Bar(y=family + ": " + part["segment"], x=part["users"], orientation="h", name=family,
                             marker_color=SERIES[i % len(SERIES)]))
    return _layout(fig, height=max(320, 22 * len(df) + 80), xaxis_title="customers",
                   margin={"l": 200, "r": 20, "t": 20, "b": 50})


def cohort_chart(df: pd.DataFrame) -> go.Figure:
    grid = df.pivot_table(index="cohort_month", columns="months_since_registration", values="retention_rate")
    labels = [pd.Timestamp(m).strftime("%Y-%m") for m in grid.index]
    fig = go.Figure(go.Heatmap(z=grid.to_numpy() * 100, x=[str(c) for c in grid.columns], y=labels,
                               colorscale="Blues", zmin=0, zmax=100, colorbar={"title": "%"},
                               hovertemplate="cohort %{y}, month %{x}: %{z:.1f}%<extra></extra>"))
    return _layout(fig, height=max(320, 26 * len(labels) + 90), xaxis_title="months since registration",
                   yaxis={"autorange": "reversed", "type": "category"})


def arpu_chart(arpu: pd.DataFrame, ltv: pd.DataFrame | None) -> go.Figure:
    cols = 2 if ltv is not None else 1
    titles = ["ARPU, trailing 7 days"] + (["LTV per paying customer by value segment"] if ltv is not None else [])
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, column_widths=[0.6, 0.4][:cols])
    fig.add_trace(go.Scatter(x=arpu["date_day"], y=arpu["arpu_7d"], name="ARPU (7 d)",
                             line={"color": ACCENT}), row=1, col=1)
    if ltv is not None:
        fig.add_trace(go.Bar(x=ltv["dimension_value"], y=ltv["ltv_per_customer"], name="LTV per customer",
                             marker_color=[MUTED if d == "all" else GOOD for d in ltv["dimension"]]), row=1, col=2)
    return _layout(fig, showlegend=False, margin={"l": 60, "r": 20, "t": 60, "b": 50})


def funnel_chart(df: pd.DataFrame) -> go.Figure:
    row = df.iloc[0]
    fig = go.Figure(go.Funnel(y=["registered", "first order", "repeat order"],
                              x=[row["registered_users"], row["first_order_users"], row["repeat_order_users"]],
                              textinfo="value+percent initial", marker={"color": FUNNEL_COLOURS[:3]}))
    return _layout(fig, height=300, margin={"l": 120, "r": 20, "t": 20, "b": 20})


def journey_funnel_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for colour, stage in zip(FUNNEL_COLOURS, ["sent", "delivered", "opened", "clicked", "converted"], strict=True):
        fig.add_trace(go.Bar(x=df["journey_id"], y=df[stage], name=stage, marker_color=colour))
    return _layout(fig, barmode="group", yaxis_title="messages")


def uplift_chart(df: pd.DataFrame) -> go.Figure:
    """Uplift in percentage points with its interval; journeys without enough data are not drawn."""
    ok = df[df["status"] == "ok"].sort_values("uplift_abs")
    colours = [GOOD if s and u > 0 else BAD if s else MUTED for s, u in zip(ok["significant"], ok["uplift_abs"],
                                                                          strict=True)]
    fig = go.Figure(go.Scatter(
        x=ok["uplift_abs"] * 100, y=ok["journey_id"], mode="markers", marker={"size": 12, "color": colours},
        error_x={"type": "data", "symmetric": False, "array": (ok["uplift_ci_high"] - ok["uplift_abs"]) * 100,
                 "arrayminus": (ok["uplift_abs"] - ok["uplift_ci_low"]) * 100, "color": "#495057"},
        hovertemplate="%{y}: %{x:.1f} pp<extra></extra>"))
    fig.add_vline(x=0, line={"color": "#868e96", "dash": "dash"})
    return _layout(fig, height=max(240, 40 * len(ok) + 100), xaxis_title="uplift, percentage points (95 % interval)",
                   margin={"l": 160, "r": 20, "t": 20, "b": 50})


def trend_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (journey, part) in enumerate(df.groupby("journey_id", sort=True)):
        fig.add_trace(go.Scatter(x=part["days_since_send"], y=part["converted_share"] * 100, name=str(journey),
                                 mode="lines+markers", line={"color": SERIES[i % len(SERIES)]}))
    return _layout(fig, xaxis={"title": "days since send", "dtick": 1}, yaxis_title="converted, cumulative %")


def ab_chart(df: pd.DataFrame) -> go.Figure:
    labels = df["journey_id"] + " / " + df["step_id"]
    fig = go.Figure()
    for i, variant in enumerate(sorted(df["variant"].unique())):
        part = df[df["variant"] == variant]
        rate = part["conversion_rate"] * 100
        fig.add_trace(go.Bar(
            x=labels[part.index], y=rate, name=f"variant {variant}", marker_color=SERIES[i % len(SERIES)],
            error_y={"type": "data", "symmetric": False, "array": part["rate_ci_high"] * 100 - rate,
                     "arrayminus": rate - part["rate_ci_low"] * 100}))
    return _layout(fig, barmode="group", yaxis_title="conversion % (95 % interval)")


def operators_chart(df: pd.DataFrame) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=["tasks", "conversion rate vs rule baseline"])
    for colour, column, name in [(ACCENT, "tasks_assigned", "assigned"), (GOOD, "tasks_handled", "handled"),
                                 (BAD, "tasks_expired", "expired")]:
        fig.add_trace(go.Bar(x=df["operator_id"], y=df[column], name=name, marker_color=colour), row=1, col=1)
    fig.add_trace(go.Bar(x=df["operator_id"], y=df["conversion_rate"] * 100, name="conversion %",
                         marker_color="#15aabf"), row=1, col=2)
    fig.add_trace(go.Scatter(x=df["operator_id"], y=df["baseline_conversion_rate"] * 100, name="baseline %",
                             mode="markers", marker={"symbol": "line-ew-open", "size": 22, "color": "#212529"}),
                  row=1, col=2)
    return _layout(fig, barmode="group", margin={"l": 60, "r": 20, "t": 60, "b": 50})


def delivery_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for outcome, colour in OUTCOME_COLOURS.items():
        part = df[df["outcome"] == outcome]
        if len(part):
            fig.add_trace(go.Scatter(x=part["day"], y=part["events"], name=outcome, mode="lines+markers",
                                     line={"color": colour}))
    return _layout(fig, yaxis_title="events per day")
