"""Operator task lists for the operators' tool: CSV and JSON Lines in <export_dir>/tasks/, and
the payload of the optional HTTP push.

The push is tracked per task in operator_task_pushes (the status version it last delivered): a task
whose current status has not been delivered yet is sent again on every run until the endpoint
accepts it, so a batch that failed after its retries is not lost. Tasks that reached a terminal
status without ever being pushed (created and expired before a push was configured) are not sent.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

EXPORT_SELECT = """
select task_id, operator_id, user_id, rule, status, priority,
       row_number() over (partition by operator_id order by priority desc, task_id) as rank_in_list,
       created_at, due_at, expires_at, recall_reason, context
from operator_tasks
where status in ('open', 'unassigned')
order by operator_id nulls last, priority desc, task_id
"""


def write_task_exports(con: duckdb.DuckDBPyConnection, export_dir: Path) -> dict[str, Path]:
    """Every live (open or unassigned) task, each operator's list sorted by priority."""
    folder = Path(export_dir) / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "operator_tasks.csv", "jsonl": folder / "operator_tasks.jsonl"}
    for fmt, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        options = "format csv, header true" if fmt == "csv" else "format json"
        con.execute(f"copy ({EXPORT_SELECT}) to '{tmp}' ({options})")
        os.replace(tmp, path)  # readers never see half a file
    return paths


PUSHES_DDL = """
create table if not exists operator_task_pushes (
    task_id varchar primary key,
    status varchar not null,                 -- the status the endpoint last accepted
    status_updated_at timestamptz not null,  -- ... and its version (operator_tasks.status_updated_at)
    pushed_at timestamptz not null
)
"""

PUSH_COLUMNS = """
    t.task_id, t.operator_id, t.user_id, t.rule, t.status, t.priority,
    strftime(t.created_at, '%Y-%m-%dT%H:%M:%SZ') as created_at,
    strftime(t.due_at, '%Y-%m-%dT%H:%M:%SZ') as due_at,
    strftime(t.expires_at, '%Y-%m-%dT%H:%M:%SZ') as expires_at,
    t.recall_reason, t.context::varchar as context
"""


def unpushed_tasks(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Tasks whose current status the endpoint has not accepted yet: live tasks never pushed, and
    pushed tasks whose status changed since (expired, done, reassigned...)."""
    con.execute(PUSHES_DDL)
    return con.sql(f"""
        select {PUSH_COLUMNS}, t.status_updated_at
        from operator_tasks t left join operator_task_pushes p using (task_id)
        where (p.task_id is null and t.status in ('open', 'unassigned'))
           or (p.task_id is not null and p.status_updated_at is distinct from t.status_updated_at)
        order by t.operator_id nulls last, t.priority desc, t.task_id
    """).to_arrow_table()


def mark_tasks_pushed(con: duckdb.DuckDBPyConnection, delivered: pa.Table, as_of: datetime) -> int:
    """Record the status versions the endpoint accepted."""
    con.execute(PUSHES_DDL)
    con.register("_tk_delivered", delivered.select(["task_id", "status", "status_updated_at"]))
    try:
        return len(con.execute("""insert or replace into operator_task_pushes
            select task_id, status, status_updated_at, $as_of from _tk_delivered returning 1""",
                               {"as_of": as_of}).fetchall())
    finally:
        con.unregister("_tk_delivered")


def changed_tasks(con: duckdb.DuckDBPyConnection, as_of: datetime) -> pa.Table:
    """Tasks created, assigned or expired by this run (status_updated_at = as_of): the push payload."""
    return con.sql("""
        select task_id, operator_id, user_id, rule, status, priority,
               strftime(created_at, '%Y-%m-%dT%H:%M:%SZ') as created_at,
               strftime(due_at, '%Y-%m-%dT%H:%M:%SZ') as due_at,
               strftime(expires_at, '%Y-%m-%dT%H:%M:%SZ') as expires_at,
               recall_reason, context::varchar as context
        from operator_tasks where status_updated_at = $as_of
        order by operator_id nulls last, priority desc, task_id
    """, params={"as_of": as_of}).to_arrow_table()
