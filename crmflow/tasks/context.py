"""The context an operator sees on a task: profile, lifecycle, last orders, risk, talking points."""

from __future__ import annotations

import json

import pyarrow as pa

from crmflow.tasks.config import TaskRules
from crmflow.warehouse import Warehouse
from crmflow.warehouse.dialect import json_array_agg, json_object, json_parse, utc_iso_text


def load_talking_points(wh: Warehouse, rules: TaskRules) -> None:
    """_tk_points (lifecycle_stage, points as JSON text): a handful of rows from task_rules.yaml."""
    table = pa.table({"lifecycle_stage": pa.array(list(rules.talking_points), pa.string()),
                      "points": pa.array([json.dumps(list(v)) for v in rules.talking_points.values()], pa.string())})
    wh.create_temp_table("_tk_points", table)


def context_sql(dialect: str) -> str:
    """Reads _tk_cand (task_id, user_id, recall_reason, note); one JSON context per task.

    Timestamps are ISO 8601 UTC text, so the context reads the same whichever engine built it."""
    order = json_object("'order_id', order_id, 'ordered_at', " + utc_iso_text("ordered_at", dialect)
                        + ", 'amount', amount, 'currency', currency, 'status', status", dialect)
    profile = json_object(
        "'first_name', p.first_name, 'customer_type', p.customer_type, 'company_name', p.company_name, "
        "'industry', p.industry, 'country', p.country, 'locale', p.locale, 'order_count', p.order_count, "
        "'revenue', p.revenue, 'days_since_last_purchase', p.days_since_last_purchase", dialect)
    risk = json_object("'churn_probability', s.churn_probability, 'risk_band', s.risk_band, "
                       "'value_at_risk', pr.value_at_risk", dialect)
    empty = json_parse("'[]'", dialect)
    context = json_object(
        f"'profile', {profile}, 'lifecycle_stage', l.lifecycle_stage, 'value_tier', v.value_tier, "
        f"'b2b_grade', v.b2b_grade, 'risk', {risk}, 'last_orders', coalesce(lo.orders, {empty}), "
        f"'recall_reason', c.recall_reason, 'note', c.note, "
        f"'talking_points', coalesce({json_parse('tp.points', dialect)}, {empty})", dialect)
    return f"""
with recent as (
    select o.*, row_number() over (partition by o.user_id order by o.ordered_at desc, o.order_id) as recency
    from stg_shop__orders o
    where o.user_id in (select user_id from _tk_cand) and o.ordered_at <= cast($as_of as timestamptz)
),
last_orders as (
    select user_id, {json_array_agg(order, "ordered_at desc, order_id", dialect)} as orders
    from recent where recency <= 3
    group by user_id
)
select c.task_id, {context} as context
from _tk_cand c
left join customer_profile p on p.user_id = c.user_id
left join customer_lifecycle l on l.user_id = c.user_id
left join customer_value_tier v on v.user_id = c.user_id
left join customer_churn_scores s on s.user_id = c.user_id
left join customer_priority pr on pr.user_id = c.user_id
left join last_orders lo on lo.user_id = c.user_id
left join _tk_points tp on tp.lifecycle_stage = l.lifecycle_stage
"""
