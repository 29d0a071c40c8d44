"""Task tables, and empty stand-ins for optional inputs so one SQL text serves every warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from crmflow.banners.relations import existing_relations

# The values of operator_tasks.status / .source (docs/data-contracts.md, checked against it by
# tests/test_docs_consistency.py). An outcome row sets the status to its outcome.
TASK_OUTCOMES = ("done", "no_answer", "converted")
TASK_STATUSES = ("open", *TASK_OUTCOMES, "expired", "unassigned")
TASK_SOURCES = ("recall", "reassign", "journey")

TASKS_DDL = """
create table if not exists operator_tasks (
    task_id varchar not null,           -- deterministic: md5 of rule|user|day, request key, or expired task
    user_id varchar not null,
    operator_id varchar,                -- null while unassigned
    rule varchar not null,              -- task rule id, or journey:<journey_id>
    policy varchar not null,            -- rule id, or queue:<queue> for journey tasks
    source varchar not null,            -- recall | reassign | journey
    recall_reason varchar,
    priority double not null,           -- expected value of following up (value at risk, else RFM/revenue)
    created_at timestamptz not null,
    assigned_at timestamptz,
    due_at timestamptz not null,
    expires_at timestamptz not null,
    status varchar not null,            -- open | done | no_answer | converted | expired | unassigned
    status_updated_at timestamptz not null,
    reassigned_from varchar,
    journey_id varchar,
    step_id varchar,
    note varchar,
    context json                        -- profile, lifecycle, last orders, risk, talking points
);
create table if not exists operator_task_rule_runs (
    rule varchar not null,
    ran_at timestamptz not null,
    recalled bigint not null,
    created bigint not null,
    assigned bigint not null
);
"""

# Optional inputs and the columns the task SQL reads from them.
STAND_INS = {
    "customer_profile": "user_id varchar, first_name varchar, customer_type varchar, company_name varchar, "
                        "industry varchar, country varchar, locale varchar, order_count bigint, revenue double, "
                        "days_since_last_purchase integer",
    "customer_lifecycle": "user_id varchar, lifecycle_stage varchar",
    "customer_value_tier": "user_id varchar, value_tier varchar, b2b_grade varchar",
    "customer_rfm": "user_id varchar, monetary_value double, rfm_segment varchar",
    "customer_churn_scores": "user_id varchar, churn_probability double, risk_band varchar",
    "customer_priority": "user_id varchar, value_at_risk double, priority_rank bigint",
    "stg_shop__orders": "order_id varchar, user_id varchar, ordered_at timestamptz, status varchar, "
                        "amount double, currency varchar",
    "journey_task_requests": "request_key varchar, user_id varchar, journey_id varchar, step_id varchar, "
                             "queue varchar, priority varchar, note varchar, requested_at timestamptz",
}


def ensure_task_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(TASKS_DDL)


@contextmanager
def optional_inputs(con: duckdb.DuckDBPyConnection) -> Iterator[list[str]]:
    """Temp empty views for missing optional inputs (yields their names); dropped afterwards so a
    table created later on the same connection is not shadowed."""
    present = existing_relations(con)
    missing = [name for name in STAND_INS if name not in present]
    for name in missing:
        cols = ", ".join(f"null::{c.split()[1]} as {c.split()[0]}" for c in STAND_INS[name].split(", "))
        con.execute(f"create or replace temp view {name} as select {cols} where false")
    try:
        yield missing
    finally:
        for name in missing:
            con.execute(f"drop view if exists temp.{name}")
