"""The context an operator sees on a task: profile, lifecycle, last orders, risk, talking points."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from crmflow.tasks.config import TaskRules


def load_talking_points(con: duckdb.DuckDBPyConnection, rules: TaskRules) -> None:
    table = pa.table({"lifecycle_stage": list(rules.talking_points),
                      "points": [list(v) for v in rules.talking_points.values()]},
                     schema=pa.schema([("lifecycle_stage", pa.string()), ("points", pa.list_(pa.string()))]))
    con.register("_tk_points_arrow", table)
    con.execute("create or replace temp table _tk_points as select * from _tk_points_arrow")
    con.unregister("_tk_points_arrow")


# Reads _tk_cand (task_id, user_id, recall_reason, note); writes one json per task.
CONTEXT_SQL = """
create or replace temp table _tk_context as
with last_orders as (
    select user_id,
           list(json_object('order_id', order_id, 'ordered_at', ordered_at, 'amount', amount,
                            'currency', currency, 'status', status) order by ordered_at desc) as orders
    from (
        select o.* from stg_shop__orders o
        where o.user_id in (select user_id from _tk_cand) and o.ordered_at <= $as_of::timestamptz
        qualify row_number() over (partition by o.user_id order by o.ordered_at desc, o.order_id) <= 3
    )
    group by user_id
)
select c.task_id,
       json_object(
           'profile', json_object('first_name', p.first_name, 'customer_type', p.customer_type,
                                  'company_name', p.company_name, 'industry', p.industry, 'country', p.country,
                                  'locale', p.locale, 'order_count', p.order_count, 'revenue', p.revenue,
                                  'days_since_last_purchase', p.days_since_last_purchase),
           'lifecycle_stage', l.lifecycle_stage,
           'value_tier', v.value_tier,
           'b2b_grade', v.b2b_grade,
           'risk', json_object('churn_probability', s.churn_probability, 'risk_band', s.risk_band,
                               'value_at_risk', pr.value_at_risk),
           'last_orders', coalesce(lo.orders, []),
           'recall_reason', c.recall_reason,
           'note', c.note,
           'talking_points', coalesce(tp.points, [])
       ) as context
from _tk_cand c
left join customer_profile p on p.user_id = c.user_id
left join customer_lifecycle l on l.user_id = c.user_id
left join customer_value_tier v on v.user_id = c.user_id
left join customer_churn_scores s on s.user_id = c.user_id
left join customer_priority pr on pr.user_id = c.user_id
left join last_orders lo on lo.user_id = c.user_id
left join _tk_points tp on tp.lifecycle_stage = l.lifecycle_stage
"""
