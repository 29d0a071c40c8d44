"""Operator follow-up priority: expected value at risk = churn probability x trailing revenue."""

from __future__ import annotations

from datetime import datetime

import duckdb

from crmflow.intelligence.config import FeatureConfig, PriorityConfig
from crmflow.intelligence.tables import existing_tables, sql_list

PRIORITY_SELECT = """
with value as (
    select user_id, sum(amount)::double as value
    from stg_shop__orders
    where ordered_at < $as_of and ordered_at >= $as_of - to_days($window)
      and status in {paid}
    group by user_id
),
scored as (
    select s.user_id, s.churn_probability, coalesce(v.value, 0) as value,
           s.churn_probability * coalesce(v.value, 0) as value_at_risk
    from customer_churn_scores s left join value v using (user_id)
)
select user_id, churn_probability, value, value_at_risk,
       row_number() over (order by value_at_risk desc, churn_probability desc, user_id)::integer as priority_rank
from scored
"""


def build_priority(
    con: duckdb.DuckDBPyConnection, as_of: datetime, cfg: PriorityConfig, fcfg: FeatureConfig
) -> int:
    """(Re)build customer_priority from customer_churn_scores; returns its row count.

    Value is paid revenue in the trailing `value_window_days` (12 months by default): what the
    business stands to lose if the customer goes. Rank 1 = the biggest expected loss.
    """
    tables = existing_tables(con)
    if "customer_churn_scores" not in tables or "stg_shop__orders" not in tables:
        con.execute("""
            create or replace table customer_priority (user_id varchar, churn_probability double, value double,
                value_at_risk double, priority_rank integer)""")
        return 0
    sql = PRIORITY_SELECT.format(paid=sql_list(fcfg.paid_statuses))
    con.execute(f"create or replace table customer_priority as {sql}",
                {"as_of": as_of, "window": cfg.value_window_days})
    return con.execute("select count(*) from customer_priority").fetchall()[0][0]
