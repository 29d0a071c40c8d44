"""The report's queries: every chart reads one small aggregate computed in the warehouse.

The SQL is portable (DuckDB and PostgreSQL run it unchanged). Each query names the relations it needs; when one is missing or the result is empty the section says
"no data yet" instead of failing (a fresh warehouse, a stage that has not run, a failed upstream).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from crmflow.measurement.inputs import frame_from_arrow
from crmflow.settings import DBT_PROJECT_DIR
from crmflow.warehouse import Warehouse, as_warehouse

LIFECYCLE_WEEKS = 26
DELIVERY_DAYS = 30


@dataclass(frozen=True)
class Query:
    needs: tuple[str, ...]
    sql: str


QUERIES: dict[str, Query] = {
    # Stage sizes at weekly points: +1 when a stage row starts, -1 when it ends; a stage's size at a
    # week is the sum of its day deltas up to that week (26 weeks x a few stages over the day deltas).
    # No per-user expansion over dates.
    "lifecycle": Query(("customer_lifecycle_history",), f"""
        with changes as (
            select lifecycle_stage, cast(valid_from as date) as day, 1 as delta from customer_lifecycle_history
            union all
            select lifecycle_stage, cast(valid_to as date), -1 from customer_lifecycle_history where valid_to is not null
        ), daily as (
            select lifecycle_stage, day, sum(delta) as delta from changes group by lifecycle_stage, day
        ), weeks as (
            select cast($as_of as date) - cast(7 * w.n as integer) as week
            from generate_series(0, {LIFECYCLE_WEEKS - 1}) as w(n)
        ), stages as (select distinct lifecycle_stage from customer_lifecycle_history)
        select w.week, s.lifecycle_stage, cast(coalesce(sum(d.delta), 0) as bigint) as users
        from weeks w cross join stages s
        left join daily d on d.lifecycle_stage = s.lifecycle_stage and d.day <= w.week
        where w.week >= (select min(cast(valid_from as date)) from customer_lifecycle_history)
        group by w.week, s.lifecycle_stage
        order by w.week, s.lifecycle_stage
    """),
    "tiers": Query(("customer_value_tier",), """
        select customer_type, coalesce(value_tier, b2b_grade, 'unscored') as grade, count(*) as users
        from customer_value_tier group by 1, 2 order by customer_type, grade
    """),
    "segments": Query(("customer_segments",), """
        select segment_family, segment, count(*) as users
        from customer_segments group by segment_family, segment order by segment_family, users desc, segment
    """),
    "cohorts": Query(("kpi_cohort_retention",), """
        select cohort_month, months_since_registration, cohort_size, retention_rate
        from kpi_cohort_retention
        where cohort_month >= (select max(cohort_month) from kpi_cohort_retention) - interval '11 months'
          and months_since_registration <= 12
        order by cohort_month, months_since_registration
    """),
    # ARPU over a trailing 7 days: revenue / active users summed over the window (not a mean of ratios).
    "arpu": Query(("kpi_daily",), """
        with window_sums as (
            select date_day, revenue, active_users,
                   sum(revenue) over w as revenue_7d, sum(active_users) over w as active_7d
            from kpi_daily
            where date_day <= cast($as_of as date)
            window w as (order by date_day rows between 6 preceding and current row)
        )
        select date_day, cast(revenue as double precision) as revenue,
               cast(revenue_7d as double precision) / nullif(active_7d, 0) as arpu_7d
        from window_sums
        where date_day > cast($as_of as date) - 180
        order by date_day
    """),
    "ltv": Query(("kpi_ltv",), """
        select dimension, dimension_value, users, cast(ltv_per_customer as double precision) as ltv_per_customer,
               cast(ltv_per_user as double precision) as ltv_per_user
        from kpi_ltv where dimension in ('value_segment', 'all')
        order by dimension = 'all', ltv_per_customer desc nulls last
    """),
    "funnel": Query(("kpi_funnel",), """
        select registered_users, first_order_users, repeat_order_users
        from kpi_funnel where acquisition_channel = 'all'
    """),
    "journey_funnel": Query(("journey_attribution",), """
        select journey_id, cast(sum(sent) as bigint) as sent, cast(sum(delivered) as bigint) as delivered,
               cast(sum(opened) as bigint) as opened, cast(sum(clicked) as bigint) as clicked,
               cast(sum(converted) as bigint) as converted, cast(sum(revenue) as double precision) as revenue
        from journey_attribution group by journey_id order by journey_id
    """),
    "uplift": Query(("journey_uplift",), "select * from journey_uplift order by journey_id"),
    # Right-censored pooling (Kaplan-Meier over send days): day d uses only the send days whose day d is
    # over (the trend table has a cell only then). Of the messages not converted by day d-1 on those
    # send days, the share converting on day d is that day's rate; the cumulative share is
    # 1 - product(1 - rate), taken in pandas (`product` is no PostgreSQL aggregate). A plain sum over whatever cells exist mixes fewer, older sends into the
    # later days, so the curve could fall (to 0 when the oldest send day had no conversions).
    "trend": Query(("journey_conversion_trend",), """
        with cells as (
            select journey_id, send_date, days_since_send, sent, converted_cumulative,
                   coalesce(lag(converted_cumulative) over (
                       partition by journey_id, send_date order by days_since_send), 0) as converted_before
            from journey_conversion_trend
        ), per_day as (
            select journey_id, days_since_send, count(*) as send_days, cast(sum(sent) as bigint) as sent,
                   cast(sum(sent - converted_before) as bigint) as at_risk,
                   cast(sum(converted_cumulative - converted_before) as bigint) as converted_on_day
            from cells group by journey_id, days_since_send
        )
        select *, coalesce(cast(converted_on_day as double precision) / nullif(at_risk, 0), 0) as day_rate
        from per_day order by journey_id, days_since_send
    """),
    "ab": Query(("journey_ab_results",), "select * from journey_ab_results order by journey_id, step_id, variant"),
    "operators": Query(("operator_efficiency",), """
        select operator_id, tasks_assigned, tasks_handled, tasks_converted_reported, tasks_expired,
               cast(completion_rate as double precision) as completion_rate,
               cast(conversion_rate as double precision) as conversion_rate,
               cast(baseline_conversion_rate as double precision) as baseline_conversion_rate
        from operator_efficiency order by tasks_assigned desc, operator_id
    """),
    "delivery": Query(("delivery_events",), f"""
        select day, outcome, count(*) as events
        from (
            select cast(occurred_at as date) as day,
                   case when event in ('delivered') then 'delivered'
                        when event in ('open') then 'opened'
                        when event in ('click') then 'clicked'
                        when event in ('bounce', 'dropped', 'undelivered', 'failed') then 'bounced / failed'
                        when event in ('unsubscribe', 'group_unsubscribe', 'spamreport') then 'unsubscribed / spam'
                   end as outcome
            from delivery_events
            where occurred_at <= $as_of and occurred_at > $as_of - interval '{DELIVERY_DAYS} days'
        ) classified
        where outcome is not null
        group by day, outcome order by day, outcome
    """),
}

# Single numbers for the header cards; each needs its relations like a chart does.
FIGURES: dict[str, Query] = {
    "customers": Query(("customer_profile",), "select count(*) from customer_profile"),
    "active_customers": Query(("customer_lifecycle",), """
        select count(*) from customer_lifecycle where lifecycle_stage in ('new', 'active', 'reactivated')"""),
    "revenue_30d": Query(("kpi_daily",), """
        select cast(sum(revenue) as double precision) from kpi_daily
        where date_day > cast($as_of as date) - 30 and date_day <= cast($as_of as date)"""),
    "messages_sent": Query(("journey_attribution",), "select cast(sum(sent) as bigint) from journey_attribution"),
    "attributed_revenue": Query(("journey_attribution",),
                                "select cast(sum(revenue) as double precision) from journey_attribution"),
    "bounce_rate": Query(("journey_attribution",),
                         "select cast(sum(bounced) as double precision) / nullif(sum(sent), 0) "
                         "from journey_attribution"),
    # Without any delivery event a bounce rate of 0 would be a guess, not a measurement.
    "delivery_events": Query(("delivery_events",),
                             "select count(*) from delivery_events where occurred_at <= $as_of"),
    "journeys_measured": Query(("journey_uplift",), "select count(*) from journey_uplift where status = 'ok'"),
    "journeys_significant": Query(("journey_uplift",),
                                  "select count(*) from journey_uplift where status = 'ok' and significant"),
}


@dataclass
class ReportData:
    as_of: datetime
    frames: dict[str, pd.DataFrame | None]
    figures: dict[str, float | int | None]
    missing: set[str]
    currency: str  # every money amount in the warehouse is in this ISO 4217 currency

    def missing_for(self, key: str) -> list[str]:
        """The relations chart `key` needs that are not in the warehouse (empty: they exist, no rows)."""
        return [name for name in QUERIES[key].needs if name in self.missing]


def reporting_currency(project_file: Path = DBT_PROJECT_DIR / "dbt_project.yml") -> str:
    """The dbt var reporting_currency: stg_shop__orders converts every amount into it, so it names
    every money figure of the report."""
    config = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    value = (config.get("vars") or {}).get("reporting_currency")
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise ValueError(f"{project_file}: vars.reporting_currency is {value!r}; expected an ISO 4217 code "
                         "such as USD or EUR (it must also have a row in dbt_project/seeds/fx_rates.csv)")
    return value.strip().upper()


def _params(sql: str, as_of: datetime) -> dict[str, object]:
    return {"as_of": as_of} if "$as_of" in sql else {}


def _pooled_trend(per_day: pd.DataFrame) -> pd.DataFrame:
    """The cumulative share per journey: 1 - product of (1 - day rate) over the days so far."""
    survival = (1 - per_day["day_rate"]).groupby(per_day["journey_id"], sort=False).cumprod()
    return per_day.assign(converted_share=1 - survival).drop(columns="day_rate")


def load_report_data(con: Warehouse | object, as_of: datetime, currency: str | None = None) -> ReportData:
    """Every chart's frame and every header figure as of `as_of` (`con`: a Warehouse or a raw DuckDB
    connection)."""
    wh = as_warehouse(con)
    needed = {name for q in [*QUERIES.values(), *FIGURES.values()] for name in q.needs}
    missing = {name for name in needed if not wh.table_exists(name)}
    frames: dict[str, pd.DataFrame | None] = {}
    for key, query in QUERIES.items():
        if any(name in missing for name in query.needs):
            frames[key] = None
            continue
        frame = frame_from_arrow(wh.fetch_arrow(query.sql, _params(query.sql, as_of)))
        if key == "trend":
            frame = _pooled_trend(frame)
        frames[key] = frame if len(frame) else None
    figures: dict[str, float | int | None] = {}
    for key, query in FIGURES.items():
        if any(name in missing for name in query.needs):
            figures[key] = None
            continue
        value = wh.scalar(query.sql, _params(query.sql, as_of))
        figures[key] = None if value is None else (int(value) if float(value).is_integer() and key != "bounce_rate"
                                                   else float(value))
    return ReportData(as_of=as_of, frames=frames, figures=figures, missing=missing,
                      currency=currency or reporting_currency())
