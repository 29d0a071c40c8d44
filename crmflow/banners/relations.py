"""Which warehouse relations exist, and scratch temp tables, for banners and tasks on any backend.

Inputs built by other stages may be missing (empty warehouse, intelligence not run yet); callers
treat a missing relation as empty instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.dialect import temp_schema


def existing_relations(con_or_warehouse: Any) -> set[str]:
    """Tables and views of the warehouse's own schemas (never this session's temp objects)."""
    wh = as_warehouse(con_or_warehouse)
    schemas = ", ".join(f"'{name}'" for name in sorted(set(wh.schemas.values())))
    rows = wh.fetch_rows(
        "select table_name from information_schema.tables "
        # DuckDB: temp objects live in catalog 'temp'; PostgreSQL: in a pg_temp_N schema
        f"where table_catalog = current_database() and (table_schema = current_schema() or table_schema in ({schemas}))"
    )
    return {row[0] for row in rows}


def replace_temp_table(wh: Warehouse, name: str, select_sql: str, params: Mapping[str, Any] | None = None) -> None:
    """`create or replace temp table name as select_sql`, written the way both engines take it."""
    wh.execute(f"drop table if exists {temp_schema(wh.dialect)}.{name}")
    wh.execute(f"create temp table {name} as {select_sql}", params)


def replace_table(wh: Warehouse, name: str, select_sql: str, params: Mapping[str, Any] | None = None) -> None:
    """`create or replace table name as select_sql` (drop, then create: the portable form)."""
    wh.execute(f"drop table if exists {name}")
    wh.execute(f"create table {name} as {select_sql}", params)
