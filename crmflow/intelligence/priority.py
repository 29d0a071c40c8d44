"""Operator follow-up priority: expected value at risk = churn probability x trailing revenue."""

from __future__ import annotations

from datetime import datetime

from crmflow.intelligence.config import FeatureConfig, PriorityConfig
from crmflow.intelligence.tables import CHURN_SCORES, PRIORITY, empty_or_create, output_relation, sql_list
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import binary_order

PRIORITY_COLUMNS = """(
    user_id varchar, churn_probability double precision, value double precision,
    value_at_risk double precision, priority_rank integer
)"""

PRIORITY_SELECT = """
with value as (
    select user_id, cast(sum(amount) as double precision) as value
    from stg_shop__orders
    where ordered_at < $as_of and ordered_at >= $as_of - interval '1 day' * $window
      and status in {paid}
    group by user_id
),
scored as (
    select s.user_id, s.churn_probability, coalesce(v.value, 0) as value,
           s.churn_probability * coalesce(v.value, 0) as value_at_risk
    from {scores} s left join value v on v.user_id = s.user_id
)
select user_id, churn_probability, value, value_at_risk,
       cast(row_number() over (order by value_at_risk desc nulls last, churn_probability desc nulls last,
                                        {user_order}) as integer) as priority_rank
from scored
"""


def build_priority(con: Warehouse | object, as_of: datetime, cfg: PriorityConfig, fcfg: FeatureConfig) -> int:
    """(Re)build customer_priority from customer_churn_scores; returns its row count.

    Value is paid revenue in the trailing `value_window_days` (12 months by default): what the
    business stands to lose if the customer goes. Rank 1 = the biggest expected loss.
    """
    wh = as_warehouse(con)
    scores, priority = output_relation(wh, CHURN_SCORES), output_relation(wh, PRIORITY)
    inputs_exist = wh.table_exists(scores) and wh.table_exists("stg_shop__orders")
    with wh.transaction():  # readers see the old rows or the new ones
        empty_or_create(wh, priority, f"create table {priority} {PRIORITY_COLUMNS}")
        if not inputs_exist:
            return 0
        sql = PRIORITY_SELECT.format(paid=sql_list(fcfg.paid_statuses), scores=scores,
                                     user_order=binary_order("user_id", wh.dialect))
        wh.execute(f"insert into {priority} (user_id, churn_probability, value, value_at_risk, priority_rank) {sql}",
                   {"as_of": as_of, "window": int(cfg.value_window_days)})
        return int(wh.scalar(f"select count(*) from {priority}"))
