"""SQL helpers of the journey engine: scratch temp tables and the valid time-zone list."""

from __future__ import annotations

from typing import Any

from crmflow.warehouse import Warehouse

TZ_TABLE = "_journey_valid_tz"


def replace_temp_table(wh: Warehouse, name: str, select_sql: str, params: dict[str, Any] | None = None) -> None:
    """(Re)create scratch temp table `name` from a query (portable: no `create or replace`).

    On PostgreSQL the table is analysed: autovacuum never analyses temp tables, and without row
    counts and distinct values the planner picks nested loops over the next statements' joins."""
    wh.execute(f"drop table if exists {name}")
    wh.execute(f"create temp table {name} as {select_sql}", params)
    wh.analyze(name)


def ensure_tz_table(wh: Warehouse) -> None:
    """Known IANA zone names: a profile with a bad zone falls back to the default instead of failing.

    pg_timezone_names() exists on DuckDB and PostgreSQL (each engine's own zone database)."""
    wh.execute(f"create temp table if not exists {TZ_TABLE} as select name from pg_timezone_names()")
