"""Small warehouse helpers: which inputs exist, and writing a result frame as a table."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa


def existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = current_schema()"
    ).fetchall()
    return {r[0] for r in rows}


def missing_inputs(con: duckdb.DuckDBPyConnection, required: tuple[str, ...]) -> list[str]:
    have = existing_tables(con)
    return [t for t in required if t not in have]


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """A SQL literal list from config strings (quotes doubled), e.g. ('paid', 'shipped')."""
    if not values:
        return "(null)"
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def replace_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame | pa.Table, select: str) -> None:
    """Create or replace `name` from `frame`; `select` casts columns so empty frames keep their types.

    `select` is a select list over the registered frame `_frame`, e.g. "user_id::varchar as user_id".
    """
    con.register("_frame", frame)
    try:
        con.execute(f'create or replace table "{name}" as select {select} from _frame')
    finally:
        con.unregister("_frame")
