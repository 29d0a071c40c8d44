"""Small helpers to run SQL with named parameters (only the ones a statement uses are bound)."""

from __future__ import annotations

import re
from typing import Any

import duckdb

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    used = set(_PARAM.findall(sql))
    bound = {k: v for k, v in (params or {}).items() if k in used}
    missing = used - bound.keys()
    if missing:
        raise KeyError(f"SQL parameter(s) not provided: {', '.join(sorted(missing))}")
    return con.execute(sql, bound) if bound else con.execute(sql)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    row = run(con, sql, params).fetchone()
    return row[0] if row else None


TZ_TABLE = "_journey_valid_tz"


def ensure_tz_table(con: duckdb.DuckDBPyConnection) -> None:
    """Known IANA zone names: a profile with a bad zone falls back to the default instead of failing."""
    con.execute(f"create temp table if not exists {TZ_TABLE} as select name from pg_timezone_names()")


def user_tz_sql(profile_alias: str) -> str:
    """The user's zone if valid, else $default_tz (needs a left join `{TZ_TABLE} vtz`)."""
    return "coalesce(vtz.name, $default_tz)"


def tz_join(profile_alias: str) -> str:
    return f"left join {TZ_TABLE} vtz on vtz.name = {profile_alias}.timezone"
