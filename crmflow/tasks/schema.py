"""Task tables (migration 31, crmflow/tasks/ddl.py), and empty stand-ins for optional inputs so one
SQL text serves every warehouse, DuckDB or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from crmflow.banners.relations import existing_relations
from crmflow.tasks.ddl import TASKS_TEMPLATE
from crmflow.warehouse import apply_migrations, as_warehouse
from crmflow.warehouse.ddl import DUCKDB_SCHEMAS, DUCKDB_TYPES, render_ddl
from crmflow.warehouse.dialect import temp_schema

# The values of operator_tasks.status / .source (docs/data-contracts.md, checked against it by
# tests/test_docs_consistency.py). An outcome row sets the status to its outcome.
TASK_OUTCOMES = ("done", "no_answer", "converted")
TASK_STATUSES = ("open", *TASK_OUTCOMES, "expired", "unassigned")
TASK_SOURCES = ("recall", "reassign", "journey")

# The DuckDB rendering of migration 31, for tests that build a task warehouse by hand.
TASKS_DDL = render_ddl(TASKS_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)

# Optional inputs and the columns the task SQL reads from them.
STAND_INS = {
    "customer_profile": "user_id varchar, first_name varchar, customer_type varchar, company_name varchar, "
                        "industry varchar, country varchar, locale varchar, order_count bigint, revenue double precision, "
                        "days_since_last_purchase integer",
    "customer_lifecycle": "user_id varchar, lifecycle_stage varchar",
    "customer_value_tier": "user_id varchar, value_tier varchar, b2b_grade varchar",
    "customer_rfm": "user_id varchar, monetary_value double precision, rfm_segment varchar",
    "customer_churn_scores": "user_id varchar, churn_probability double precision, risk_band varchar",
    "customer_priority": "user_id varchar, value_at_risk double precision, priority_rank bigint",
    "stg_shop__orders": "order_id varchar, user_id varchar, ordered_at timestamptz, status varchar, "
                        "amount double precision, currency varchar",
    "journey_task_requests": "request_key varchar, user_id varchar, journey_id varchar, step_id varchar, "
                             "queue varchar, priority varchar, note varchar, requested_at timestamptz",
}


def ensure_task_tables(con: Any) -> None:
    """Bring the warehouse (or raw DuckDB connection) to the latest schema, task tables included."""
    apply_migrations(as_warehouse(con))


def null_columns(columns: str) -> str:
    """'a varchar, b double precision' -> 'cast(null as varchar) as a, cast(null as double precision) as b'
    (the select list of an empty, typed relation)."""
    pairs = [column.strip().split(" ", 1) for column in columns.strip().split(",")]
    return ", ".join(f"cast(null as {kind}) as {name}" for name, kind in pairs)


@contextmanager
def optional_inputs(con: Any) -> Iterator[list[str]]:
    """Temp empty views for missing optional inputs (yields their names); dropped afterwards so a
    table created later on the same connection is not shadowed."""
    wh = as_warehouse(con)
    present = existing_relations(wh)
    missing = [name for name in STAND_INS if name not in present]
    for name in missing:
        wh.execute(f"create or replace temp view {name} as select {null_columns(STAND_INS[name])} where false")
    try:
        yield missing
    finally:
        for name in missing:
            wh.execute(f"drop view if exists {temp_schema(wh.dialect)}.{name}")
