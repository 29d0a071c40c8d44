"""Last-touch attribution of paid orders to journey messages, per-step/variant counts and the daily
conversion trend after each send. All set-based SQL over the whole ledger.

The rule (docs/measurement.md): a paid order is credited to the latest message sent to the same user
before the order whose journey goal window still covers the order (sent_at < ordered_at <= sent_at
+ window). One order gives credit to at most one message; a message may collect several orders.
"""

from __future__ import annotations

from datetime import datetime

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.goals import GOALS_TABLE, PAID_STATUSES_TABLE
from crmflow.warehouse import Warehouse
from crmflow.warehouse.dialect import binary_order, round_double

NO_VARIANT = "-"  # steps without A/B variants: a real value, so group by and joins keep them

ATTRIBUTION_TABLES = ("journey_order_attribution", "journey_attribution", "journey_conversion_trend")


# The sent messages with their goal window's end: a CTE each statement repeats (one cheap scan of the
# ledger) rather than a temp table filled in the transaction. In DuckDB 2.0.0 an empty insert followed
# by an `insert ... select` of 122,880 rows or more into the same table in one transaction leaves the
# rows counted but unscanned, and an empty temp table filled later is exactly that pattern.
SENT_CTE = f"""
    sent as (
        select l.message_key, l.journey_id, l.step_id, coalesce(l.variant, '{NO_VARIANT}') as variant,
               l.user_id, l.channel, l.sent_at,
               l.sent_at + coalesce(g.window_seconds, cast($default_window as bigint)) * interval '1 second'
                   as window_end
        from send_ledger l
        left join {GOALS_TABLE} g on g.journey_id = l.journey_id
        where l.state = 'sent' and l.sent_at is not null and l.sent_at <= $as_of
    )"""


def order_attribution_sql(dialect: str) -> str:
    return f"""
    insert into journey_order_attribution (order_id, user_id, ordered_at, amount, message_key, journey_id,
                                           step_id, variant, channel, sent_at, as_of)
    with {SENT_CTE}, paid_orders as (
        select order_id, user_id, ordered_at, amount
        from stg_shop__orders
        where status in (select status from {PAID_STATUSES_TABLE}) and ordered_at <= $as_of
    ), candidates as (
        select o.order_id, o.user_id, o.ordered_at, o.amount, s.message_key, s.journey_id, s.step_id,
               s.variant, s.channel, s.sent_at,
               -- latest send first; the key (in code-point order on every engine) breaks exact ties
               -- so reruns and both backends credit the same message
               row_number() over (partition by o.order_id
                                  order by s.sent_at desc, {binary_order("s.message_key", dialect)} desc) as touch_rank
        from paid_orders o
        join sent s
          on s.user_id = o.user_id and s.sent_at < o.ordered_at and o.ordered_at <= s.window_end
    )
    select order_id, user_id, ordered_at, cast(amount as decimal(18, 2)) as amount, message_key, journey_id,
           step_id, variant, channel, sent_at, cast($as_of as timestamptz) as as_of
    from candidates
    where touch_rank = 1
"""


# The engagement funnel is made monotone: an open proves delivery, a click proves an open (image
# blocking hides many opens), so each stage counts messages with that event or a later one.
def attribution_sql(dialect: str) -> str:
    rate = round_double("cast(count(c.message_key) as double precision) / count(*)", 6, dialect)
    return f"""
    insert into journey_attribution (journey_id, step_id, variant, sent, delivered, opened, clicked, bounced,
                                     unsubscribed, converted, attributed_orders, revenue, conversion_rate, as_of)
    with {SENT_CTE}, engagement as (
        select message_key,
               bool_or(event in ('delivered', 'open', 'click')) as delivered,
               bool_or(event in ('open', 'click')) as opened,
               bool_or(event = 'click') as clicked,
               bool_or(event in ('bounce', 'dropped', 'undelivered', 'failed')) as bounced,
               bool_or(event in ('unsubscribe', 'group_unsubscribe', 'spamreport')) as unsubscribed
        from delivery_events
        where message_key is not null and occurred_at <= $as_of
        group by message_key
    ), credit as (
        select message_key, count(*) as orders, sum(amount) as revenue
        from journey_order_attribution
        group by message_key
    )
    select s.journey_id, s.step_id, s.variant,
           count(*) as sent,
           count(*) filter (where e.delivered) as delivered,
           count(*) filter (where e.opened) as opened,
           count(*) filter (where e.clicked) as clicked,
           count(*) filter (where e.bounced) as bounced,
           count(*) filter (where e.unsubscribed) as unsubscribed,
           count(c.message_key) as converted,
           cast(coalesce(sum(c.orders), 0) as bigint) as attributed_orders,
           cast(coalesce(sum(c.revenue), 0) as decimal(18, 2)) as revenue,
           {rate} as conversion_rate,
           cast($as_of as timestamptz) as as_of
    from sent s
    left join engagement e on e.message_key = s.message_key
    left join credit c on c.message_key = s.message_key
    group by s.journey_id, s.step_id, s.variant
"""


# Day d = the d-th UTC calendar day after the send's day (day 0 = the same day). A (send day, d)
# cell is kept only once that calendar day is over, so a young send never shows a falsely low rate.
# Date minus date is a whole number of days on both engines (the session time zone is UTC).
def trend_sql(dialect: str) -> str:
    share = round_double("cast(coalesce(sum(c.converted), 0) as double precision) / g.sent", 6, dialect)
    return f"""
    insert into journey_conversion_trend (journey_id, send_date, days_since_send, sent, converted_cumulative,
                                          converted_share, as_of)
    with {SENT_CTE}, first_credit as (
        select message_key, min(ordered_at) as first_order_at
        from journey_order_attribution
        group by message_key
    ), per_message as (
        select s.journey_id, cast(s.sent_at as date) as send_date,
               cast(cast(f.first_order_at as date) - cast(s.sent_at as date) as integer) as conversion_day
        from sent s
        left join first_credit f on f.message_key = s.message_key
    ), sends as (
        select journey_id, send_date, count(*) as sent from per_message group by journey_id, send_date
    ), conversions as (
        select journey_id, send_date, conversion_day, count(*) as converted
        from per_message
        where conversion_day is not null
        group by journey_id, send_date, conversion_day
    ), grid as (
        select s.journey_id, s.send_date, s.sent, cast(d.n as integer) as days_since_send
        from sends s
        cross join generate_series(0, cast($trend_days as integer)) as d(n)
        where s.send_date + cast(d.n as integer) + 1 <= cast($as_of as date)
    )
    select g.journey_id, g.send_date, g.days_since_send, g.sent,
           cast(coalesce(sum(c.converted), 0) as bigint) as converted_cumulative,
           {share} as converted_share,
           cast($as_of as timestamptz) as as_of
    from grid g
    left join conversions c
      on c.journey_id = g.journey_id and c.send_date = g.send_date and c.conversion_day <= g.days_since_send
    group by g.journey_id, g.send_date, g.days_since_send, g.sent
"""


def build_attribution(wh: Warehouse, as_of: datetime, config: MeasurementConfig) -> dict[str, int]:
    """Rebuild journey_order_attribution, journey_attribution and journey_conversion_trend.
    Expects the goal temp tables and the input stand-ins (crmflow.measurement.goals / inputs) and runs
    inside the caller's transaction."""
    params = {"as_of": as_of, "default_window": config.default_window_seconds}
    for table in ATTRIBUTION_TABLES:
        wh.execute(f"delete from {table}")
    wh.execute(order_attribution_sql(wh.dialect), params)
    wh.execute(attribution_sql(wh.dialect), params)
    wh.execute(trend_sql(wh.dialect), {**params, "trend_days": config.trend_days})
    return {
        "messages_sent": wh.scalar(f"with {SENT_CTE} select count(*) from sent", params),
        "orders_attributed": wh.scalar("select count(*) from journey_order_attribution"),
        "attribution_rows": wh.scalar("select count(*) from journey_attribution"),
    }
