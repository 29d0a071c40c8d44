"""Operator task lists for the operators' tool: CSV and JSON Lines in <export_dir>/tasks/."""

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
