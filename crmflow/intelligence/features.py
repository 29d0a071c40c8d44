"""Per-user features and churn labels, computed in the warehouse (portable SQL) as of an explicit cutoff.

Everything here reads only rows strictly before the cutoff (orders, order lines, events) plus
registration attributes fixed at sign-up, so the same cutoff gives the same features whatever
happened afterwards (tested in tests/test_intelligence_features.py). Labels read only the window
[cutoff, cutoff + horizon).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from crmflow.intelligence.config import FeatureConfig
from crmflow.intelligence.tables import sql_list
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import binary_order, epoch_us, floor_div

FEATURE_INPUTS = ("customer_profile", "stg_shop__orders", "stg_shop__order_items", "events_stitched")

Population = Literal["all", "purchasers", "active"]

# Numeric features every population gets (category shares are added per run: cat_<name>).
BASE_FEATURES = (
    "frequency",
    "monetary",
    "avg_basket",
    "recency_days",
    "tenure_days",
    "mean_gap_days",
    "recency_ratio",
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "revenue_90d",
    "events_30d",
    "events_90d",
    "active_days_30d",
    "days_since_last_event",
    "mobile_order_share",
    "is_business",
)


@dataclass(frozen=True)
class FeatureFrame:
    cutoff: datetime
    frame: pd.DataFrame  # user_id + feature columns (float64, NaN = not defined, e.g. no order yet)
    feature_names: tuple[str, ...]
    categories: tuple[str, ...]


def _category_column(category: str) -> str:
    return "cat_" + (re.sub(r"[^0-9a-zA-Z]+", "_", category).strip("_").lower() or "blank")


DAY_US = 86_400_000_000
_stage_ids = itertools.count()


@dataclass(frozen=True)
class StagedInputs:
    """Narrow temp tables read once per step, so features at several cutoffs cost one pass over the inputs.

    lines: paid order lines before `as_of` (user_id, ordered_at, category, line_amount).
    event_days: events before `as_of` per user, UTC date and `q` = the number of whole days before
    `as_of` the event lies in (ceil((as_of - event_at) / 1 day)), with count and latest time, and
    `later` = the date's second q part (a date spans two when the as-of is not midnight). For a
    cutoff `k` whole days before `as_of`, "event_at < cutoff" is q > k and "event_at >= cutoff - N
    days" is q <= k + N: the windows are exact, not rounded to days.
    """

    as_of: datetime
    lines: str
    event_days: str

    def offset_days(self, cutoff: datetime) -> int:
        days, rest = divmod(self.as_of - cutoff, timedelta(days=1))
        if days < 0 or rest:
            raise ValueError(f"features: cutoff {cutoff} is not a whole number of days before the staged "
                             f"as-of {self.as_of}")
        return int(days)


# The per-(user, day, q) event stage at the run's as-of is the dbt model int_intelligence__event_days
# (dbt_project/models/intermediate/intelligence/), so the steps of one run (churn, clusters) share one
# pass over events_stitched (~17 s at 1M users) on every engine. Its SQL is _event_stage_select's.
EVENT_STAGE = "int_intelligence__event_days"


def _event_stage_select(source: str, dialect: str) -> str:
    q = floor_div(f"{epoch_us('$as_of', dialect)} - {epoch_us('event_at', dialect)} + {DAY_US - 1}",
                  str(DAY_US), dialect)
    return f"""
        with per_day_q as (
            select user_id, {q} as q, cast(event_at as date) as day, count(*) as n, max(event_at) as last_at
            from {source}
            where event_at < $as_of and user_id is not null
            group by 1, 2, 3
        )
        -- A date spans at most two q values (when the as-of is not midnight); `later` marks the
        -- second, so distinct active days in a window are rows minus `later` rows whose first
        -- part is in the window too (no count(distinct) per cutoff).
        select user_id, q, day, n, last_at, q > min(q) over (partition by user_id, day) as later
        from per_day_q
    """


def dbt_event_stage(wh: Warehouse, as_of: datetime) -> str | None:
    """The dbt event stage when it exists and was built at `as_of`; None = stage a copy instead.

    An empty stage says nothing about its as-of and is not used (staging a copy of no events is cheap).
    """
    if not wh.table_exists(EVENT_STAGE):
        return None
    built_at = wh.scalar(f"select as_of from {EVENT_STAGE} limit 1")
    return EVENT_STAGE if built_at is not None and built_at == as_of else None


@contextmanager
def staged_inputs(con: object, as_of: datetime, cfg: FeatureConfig, share: bool = True) -> Iterator[StagedInputs]:
    """Stage the inputs at `as_of`. share: read the dbt event stage when it was built at `as_of`
    (dbt_event_stage); otherwise, or with share=False, stage the events into a temp table."""
    wh = as_warehouse(con)
    n = next(_stage_ids)
    lines, temp_events = f"_intel_lines_{n}", f"_intel_event_days_{n}"
    # Dropped on success only: after an error inside a PostgreSQL transaction any statement fails
    # and would hide the real error; the rollback (or closing the connection) removes them.
    wh.execute(
        f"""
        create temp table {lines} as
        select user_id, ordered_at, category, line_amount from stg_shop__order_items
        where ordered_at < $as_of and status in {sql_list(cfg.paid_statuses)} and user_id is not null
        """,
        {"as_of": as_of},
    )
    event_days = dbt_event_stage(wh, as_of) if share else None
    if event_days is None:
        wh.execute(f"create temp table {temp_events} as {_event_stage_select('events_stitched', wh.dialect)}",
                   {"as_of": as_of})
        event_days = temp_events
    yield StagedInputs(as_of, lines, event_days)
    wh.execute(f"drop table if exists {lines}")
    wh.execute(f"drop table if exists {temp_events}")


def top_categories(
    con: object, cutoff: datetime, cfg: FeatureConfig, staged: StagedInputs | None = None
) -> tuple[str, ...]:
    """The categories with the most paid revenue before the cutoff (ties broken by name)."""
    if cfg.top_categories == 0:
        return ()
    wh = as_warehouse(con)
    source = staged.lines if staged is not None else (
        f"(select * from stg_shop__order_items where status in {sql_list(cfg.paid_statuses)}) lines")
    rows = wh.fetch_rows(
        f"""
        select category from {source}
        where ordered_at < $cutoff and category is not null
        group by category
        order by sum(line_amount) desc nulls last, {binary_order('category', wh.dialect)}
        limit {int(cfg.top_categories)}
        """,
        {"cutoff": cutoff},
    )
    return tuple(r[0] for r in rows)


ORDER_STAT_COLUMNS = ("frequency", "monetary", "first_order_at", "last_order_at", "orders_30d", "orders_90d",
                      "orders_180d", "revenue_90d", "mobile_order_share")
EVENT_STAT_COLUMNS = ("last_event_at", "events_30d", "events_90d", "active_days_30d")


def _days_between(later: str, earlier: str, dialect: str) -> str:
    """(later - earlier) in days as double precision, from exact microseconds."""
    return (f"cast({epoch_us(later, dialect)} - {epoch_us(earlier, dialect)} as double precision)"
            " / 1e6 / 86400.0")


def build_features(
    con: object,
    cutoff: datetime,
    cfg: FeatureConfig,
    population: Population = "all",
    categories: tuple[str, ...] | None = None,
    staged: StagedInputs | None = None,
) -> FeatureFrame:
    """One row per user in the population at `cutoff`, ordered by user_id (code point order).

    population: all = registered or purchased before the cutoff; purchasers = at least one paid order
    before it; active = a paid order or an event before it. `categories` fixes the category-share
    columns (pass the training run's list when scoring, so the columns line up). `staged`: inputs
    staged at an as-of a whole number of days after the cutoff (several cutoffs, one pass).
    """
    wh = as_warehouse(con)
    if staged is None:
        with staged_inputs(wh, cutoff, cfg) as fresh:
            return build_features(wh, cutoff, cfg, population, categories, fresh)
    k = staged.offset_days(cutoff)
    d = wh.dialect
    cats = top_categories(wh, cutoff, cfg, staged) if categories is None else categories
    cat_cols = tuple(_category_column(c) for c in cats)
    cat_select = "".join(
        f",\n coalesce(cast(sum(line_amount) filter (where category = {sql_list([c])}) as double precision)"
        f" / nullif(cast(sum(line_amount) as double precision), 0), 0) as {col}"
        for c, col in zip(cats, cat_cols, strict=True)
    )
    paid = sql_list(cfg.paid_statuses)
    population_filter = {
        "all": "(p.registered_at < $cutoff or o.user_id is not null)",
        "purchasers": "o.user_id is not null",
        "active": "(o.user_id is not null or e.user_id is not null)",
    }[population]
    stat_columns = ", ".join([*(f"o.{c}" for c in ORDER_STAT_COLUMNS), *(f"e.{c}" for c in EVENT_STAT_COLUMNS)])
    sql = f"""
    with orders_paid as (
        select user_id, ordered_at, amount, channel from stg_shop__orders
        where ordered_at < $cutoff and status in {paid} and user_id is not null
    ),
    order_stats as (
        select
            user_id,
            cast(count(*) as double precision) as frequency,
            cast(sum(amount) as double precision) as monetary,
            min(ordered_at) as first_order_at,
            max(ordered_at) as last_order_at,
            cast(count(*) filter (where ordered_at >= $cutoff - interval '30 days') as double precision) as orders_30d,
            cast(count(*) filter (where ordered_at >= $cutoff - interval '90 days') as double precision) as orders_90d,
            cast(count(*) filter (where ordered_at >= $cutoff - interval '180 days') as double precision)
                as orders_180d,
            cast(coalesce(sum(amount) filter (where ordered_at >= $cutoff - interval '90 days'), 0)
                 as double precision) as revenue_90d,
            cast(avg(case when lower(channel) in {sql_list(cfg.mobile_channels)} then 1.0 else 0.0 end)
                 as double precision) as mobile_order_share
        from orders_paid group by user_id
    ),
    category_stats as (
        select user_id{cat_select}
        from {staged.lines}
        where ordered_at < $cutoff
        group by user_id
    ),
    event_stats as (
        select
            user_id,
            max(last_at) as last_event_at,
            cast(coalesce(sum(n) filter (where q <= {k + 30}), 0) as double precision) as events_30d,
            cast(coalesce(sum(n) filter (where q <= {k + 90}), 0) as double precision) as events_90d,
            cast(count(*) filter (where q <= {k + 30})
                 - count(*) filter (where later and q > {k + 1} and q <= {k + 30}) as double precision)
                as active_days_30d
        from {staged.event_days}
        where q > {k}
        group by user_id
    ),
    users as (
        select user_id, min(registered_at) as registered_at, max(customer_type) as customer_type
        from customer_profile where user_id is not null group by user_id
    ),
    population as (
        select
            coalesce(p.user_id, o.user_id, e.user_id) as user_id,
            case when p.registered_at < $cutoff then p.registered_at end as registered_at,
            p.customer_type,
            {stat_columns}
        from users p
        full join order_stats o on o.user_id = p.user_id
        full join event_stats e on e.user_id = coalesce(p.user_id, o.user_id)
        where {population_filter}
    )
    select
        cast(p.user_id as varchar) as user_id,
        coalesce(p.frequency, 0) as frequency,
        coalesce(p.monetary, 0) as monetary,
        coalesce(p.monetary / nullif(p.frequency, 0), 0) as avg_basket,
        {_days_between('$cutoff', 'p.last_order_at', d)} as recency_days,
        greatest({_days_between('$cutoff', 'least(coalesce(p.registered_at, p.first_order_at), '
                                'coalesce(p.first_order_at, p.registered_at))', d)}, 0) as tenure_days,
        case when p.frequency >= 2
             then {_days_between('p.last_order_at', 'p.first_order_at', d)} / (p.frequency - 1)
        end as mean_gap_days,
        coalesce(p.orders_30d, 0) as orders_30d,
        coalesce(p.orders_90d, 0) as orders_90d,
        coalesce(p.orders_180d, 0) as orders_180d,
        coalesce(p.revenue_90d, 0) as revenue_90d,
        coalesce(p.events_30d, 0) as events_30d,
        coalesce(p.events_90d, 0) as events_90d,
        coalesce(p.active_days_30d, 0) as active_days_30d,
        {_days_between('$cutoff', 'p.last_event_at', d)} as days_since_last_event,
        coalesce(p.mobile_order_share, 0) as mobile_order_share,
        cast(case when lower(p.customer_type) in ('business', 'b2b', 'company') then 1 else 0 end
             as double precision) as is_business
        {"".join(f", coalesce(c.{col}, 0) as {col}" for col in cat_cols)}
    from population p
    left join category_stats c on c.user_id = p.user_id
    order by {binary_order('p.user_id', d)}
    """
    frame = wh.fetch_arrow(sql, {"cutoff": cutoff}).to_pandas()
    frame["user_id"] = frame["user_id"].astype(object)
    numeric = [c for c in frame.columns if c != "user_id"]
    frame[numeric] = frame[numeric].astype("float64")
    # A gap of 0 days (two orders the same day) would make the ratio infinite: floor the gap at 1 day.
    frame["recency_ratio"] = frame["recency_days"] / np.maximum(frame["mean_gap_days"], 1.0)
    names = (*BASE_FEATURES, *cat_cols)
    return FeatureFrame(cutoff=cutoff, frame=frame[["user_id", *names]], feature_names=names, categories=cats)


def churn_labels(
    con: object,
    user_ids: pd.Series,
    cutoff: datetime,
    horizon_days: int,
    cfg: FeatureConfig,
    label: Literal["purchase", "activity"] = "purchase",
) -> np.ndarray:
    """1 = churned: no paid order (and, for label=activity, no event) in [cutoff, cutoff + horizon)."""
    wh = as_warehouse(con)
    end = cutoff + timedelta(days=horizon_days)
    activity_union = (
        "union select user_id from events_stitched where event_at >= $cutoff and event_at < $end"
        if label == "activity"
        else ""
    )
    users = wh.create_temp_table(f"_label_users_{next(_stage_ids)}",
                                 pa.table({"user_id": pa.array(user_ids.astype(str).to_numpy(), pa.string())}))
    frame = wh.fetch_arrow(
        f"""
        with returned as (
            select user_id from stg_shop__orders
            where ordered_at >= $cutoff and ordered_at < $end and status in {sql_list(cfg.paid_statuses)}
            {activity_union}
        )
        select u.user_id, case when r.user_id is null then 1 else 0 end as churned
        from {users} u left join (select distinct user_id from returned) r on r.user_id = u.user_id
        """,
        {"cutoff": cutoff, "end": end},
    ).to_pandas()
    wh.drop_table(users)  # on success only (see staged_inputs)
    # Re-align to the caller's order (the join does not keep it).
    aligned = frame.set_index("user_id")["churned"].reindex(user_ids.astype(str).to_numpy())
    return aligned.to_numpy(dtype=np.int8)
