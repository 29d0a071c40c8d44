"""SQL helpers of the journey engine: scratch temp tables and the valid time-zone list.

`run` / `scalar` bind only the parameters a statement uses on a raw DuckDB connection; they stay for
journeys/dispatch.py until it moves to the warehouse interface (the engine and policies use `wh`).
"""

from __future__ import annotations

import re
from typing import Any

from crmflow.warehouse import Warehouse

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
TZ_TABLE = "_journey_valid_tz"


def run(con: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    missing = used - bound.keys()
    if missing:
        raise KeyError(f"SQL parameter(s) not provided: {', '.join(sorted(missing))}")
    return con.execute(sql, bound) if bound else con.execute(sql)


def scalar(con: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = run(con, sql, params).fetchone()
    return row[0] if row else None


def replace_temp_table(wh: Warehouse, name: str, select_sql: str, params: dict[str, Any] | None = None) -> None:
    """(Re)create scratch temp table `name` from a query (portable: no `create or replace`)."""
    wh.execute(f"drop table if exists {name}")
    wh.execute(f"create temp table {name} as {select_sql}", params)


def ensure_tz_table(wh: Warehouse) -> None:
    """Known IANA zone names: a profile with a bad zone falls back to the default instead of failing.

    pg_timezone_names() exists on DuckDB and PostgreSQL (each engine's own zone database)."""
    wh.execute(f"create temp table if not exists {TZ_TABLE} as select name from pg_timezone_names()")
