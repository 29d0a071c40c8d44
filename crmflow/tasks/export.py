"""Operator task lists for the operators' tool: CSV and JSON Lines in <export_dir>/tasks/, and
the payload of the optional HTTP push. On any warehouse (DuckDB or PostgreSQL): rows are read as
Arrow through the warehouse interface and the files are written in Python, the same bytes on both.

The push is tracked per task in operator_task_pushes (the status version it last delivered): a task
whose current status has not been delivered yet is sent again on every run until the endpoint
accepts it, so a batch that failed after its retries is not lost. Tasks that reached a terminal
status without ever being pushed (created and expired before a push was configured) are not sent.

Timestamps are ISO 8601 UTC text (`YYYY-MM-DDTHH:MM:SSZ`) in the files and the payloads; `context`
is JSON with its keys sorted (PostgreSQL's jsonb and DuckDB's json keep them in different orders).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import binary_order, utc_iso_text

EXPORT_COLUMNS = ("task_id", "operator_id", "user_id", "rule", "status", "priority", "rank_in_list",
                  "created_at", "due_at", "expires_at", "recall_reason", "context")


def _columns(dialect: str, alias: str = "") -> str:
    """The push / export columns of operator_tasks (timestamps as UTC text, context as JSON text)."""
    times = ", ".join(f"{utc_iso_text(alias + c, dialect)} as {c}" for c in ("created_at", "due_at", "expires_at"))
    return (f"{alias}task_id, {alias}operator_id, {alias}user_id, {alias}rule, {alias}status, {alias}priority, "
            f"{times}, {alias}recall_reason, cast({alias}context as varchar) as context")


def _list_order(dialect: str, alias: str = "") -> str:
    """Each operator's list by priority; ties and operators in code-point order on every engine."""
    return (f"{binary_order(alias + 'operator_id', dialect)} nulls last, {alias}priority desc, "
            f"{binary_order(alias + 'task_id', dialect)}")


def _number(text: str) -> int | float:
    """A JSON number; a whole double as an integer (jsonb writes 900 where DuckDB's json writes 900.0)."""
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _canonical_context(table: pa.Table) -> pa.Table:
    """`context` as compact JSON with sorted keys and whole numbers without '.0', so both engines give
    the same text."""
    texts = [None if text is None else json.dumps(json.loads(text, parse_float=_number), sort_keys=True,
                                                  separators=(",", ":"), ensure_ascii=False)
             for text in table.column("context").to_pylist()]
    index = table.column_names.index("context")
    return table.set_column(index, "context", pa.array(texts, pa.string()))


def live_tasks(con: Warehouse | Any) -> pa.Table:
    """Every live (open or unassigned) task with its rank in its operator's list, in list order."""
    wh = as_warehouse(con)
    rows = wh.fetch_arrow(f"""
        select {_columns(wh.dialect)}, rank_in_list
        from (select *, row_number() over (partition by operator_id
                                           order by priority desc, {binary_order('task_id', wh.dialect)})
                        as rank_in_list
              from operator_tasks where status in ('open', 'unassigned')) t
        order by {_list_order(wh.dialect)}
    """)
    return _canonical_context(rows.select(list(EXPORT_COLUMNS)))


def write_task_exports(con: Warehouse | Any, export_dir: Path) -> dict[str, Path]:
    """<export_dir>/tasks/operator_tasks.csv and .jsonl: every live task, each operator's list sorted by
    priority. Written beside and renamed, so readers never see half a file."""
    rows = live_tasks(con)
    folder = Path(export_dir) / "tasks"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / "operator_tasks.csv", "jsonl": folder / "operator_tasks.jsonl"}
    csv_tmp = folder / ".operator_tasks.csv.tmp"
    with open(csv_tmp, "wb") as out:
        out.write((",".join(EXPORT_COLUMNS) + "\n").encode())  # Arrow would quote the names
        pacsv.write_csv(rows, out, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    jsonl_tmp = folder / ".operator_tasks.jsonl.tmp"
    with open(jsonl_tmp, "w", encoding="utf-8") as out:
        for record in rows.to_pylist():  # the live tasks only: bounded by the operators' lists
            if record["context"] is not None:
                record["context"] = json.loads(record["context"])
            out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
    os.replace(csv_tmp, paths["csv"])
    os.replace(jsonl_tmp, paths["jsonl"])
    return paths


def unpushed_tasks(con: Warehouse | Any) -> pa.Table:
    """Tasks whose current status the endpoint has not accepted yet: live tasks never pushed, and
    pushed tasks whose status changed since (expired, done, reassigned...)."""
    wh = as_warehouse(con)
    rows = wh.fetch_arrow(f"""
        select {_columns(wh.dialect, 't.')}, t.status_updated_at
        from operator_tasks t left join operator_task_pushes p on p.task_id = t.task_id
        where (p.task_id is null and t.status in ('open', 'unassigned'))
           or (p.task_id is not null and p.status_updated_at is distinct from t.status_updated_at)
        order by {_list_order(wh.dialect, 't.')}
    """)
    return _canonical_context(rows)


def mark_tasks_pushed(con: Warehouse | Any, delivered: pa.Table, as_of: datetime) -> int:
    """Record the status versions the endpoint accepted (one row per task, the latest wins)."""
    wh = as_warehouse(con)
    rows = delivered.select(["task_id", "status", "status_updated_at"])
    rows = rows.append_column("pushed_at", pa.array([as_of] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    wh.upsert("operator_task_pushes", rows, ["task_id"])
    return rows.num_rows


def changed_tasks(con: Warehouse | Any, as_of: datetime) -> pa.Table:
    """Tasks created, assigned or expired by this run (status_updated_at = as_of): the push payload."""
    wh = as_warehouse(con)
    rows = wh.fetch_arrow(f"""
        select {_columns(wh.dialect)} from operator_tasks where status_updated_at = $as_of
        order by {_list_order(wh.dialect)}
    """, {"as_of": as_of})
    return _canonical_context(rows)
