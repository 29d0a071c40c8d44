"""Crafted input tables for the banner and task tests (the real ones come from dbt / intelligence)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

AS_OF = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

PROFILE_DDL = """
create or replace table customer_profile (
    user_id varchar, email varchar, phone varchar, first_name varchar, locale varchar, timezone varchar,
    country varchar, city varchar, customer_type varchar, company_name varchar, industry varchar,
    employees integer, registered_at timestamptz, first_order_at timestamptz, last_order_at timestamptz,
    order_count bigint, revenue decimal(18, 2), last_activity_at timestamptz, days_since_last_activity integer,
    days_since_last_purchase integer, favourite_category varchar, as_of timestamptz)
"""


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        cols = ", ".join(row)
        marks = ", ".join(f"${k}" for k in row)
        con.execute(f"insert into {table} ({cols}) values ({marks})", row)


def make_profiles(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    con.execute(PROFILE_DDL)
    insert_rows(con, "customer_profile", [{"customer_type": "individual", "as_of": AS_OF, **r} for r in rows])


def make_lifecycle(con: duckdb.DuckDBPyConnection, stages: dict[str, str]) -> None:
    con.execute("create or replace table customer_lifecycle (user_id varchar, lifecycle_stage varchar, "
                "stage_since timestamptz, as_of timestamptz)")
    insert_rows(con, "customer_lifecycle", [{"user_id": u, "lifecycle_stage": s, "stage_since": AS_OF,
                                              "as_of": AS_OF} for u, s in stages.items()])


def make_value_tier(con: duckdb.DuckDBPyConnection, rows: Sequence[dict[str, Any]]) -> None:
    con.execute("create or replace table customer_value_tier (user_id varchar, customer_type varchar, "
                "value_tier varchar, b2b_score double, b2b_grade varchar, discount_pct double, "
                "sla_hours integer, support_level varchar, as_of timestamptz)")
    insert_rows(con, "customer_value_tier", [{"as_of": AS_OF, **r} for r in rows])


def make_segments(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple[str, str, str]]) -> None:
    con.execute("create or replace table customer_segments (user_id varchar, segment_family varchar, "
                "segment varchar, as_of timestamptz)")
    insert_rows(con, "customer_segments", [{"user_id": u, "segment_family": f, "segment": s, "as_of": AS_OF}
                                            for u, f, s in rows])


def make_tags(con: duckdb.DuckDBPyConnection, rows: Sequence[tuple[str, str]]) -> None:
    con.execute("create or replace table customer_tags (user_id varchar, tag varchar, tag_source varchar, "
                "added_at timestamptz)")
    insert_rows(con, "customer_tags", [{"user_id": u, "tag": t, "tag_source": "rule", "added_at": AS_OF}
                                        for u, t in rows])


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def content(text: str, locales: Sequence[str] = ("en",)) -> dict[str, dict[str, str]]:
    return {loc: {"image_url": f"https://cdn.example/{text}-{loc}.png", "text": f"{text} ({loc})",
                  "deep_link": f"app://{text}"} for loc in locales}


# ---- the same crafted inputs on any backend (DuckDB or PostgreSQL), and engine-neutral results ----


def write_tables(wh: Any, tables: dict[str, Any]) -> None:
    """Each Arrow table replaces the relation of its name (inputs dbt or intelligence would build)."""
    for name, table in tables.items():
        wh.write_arrow(table, name, mode="replace")


def normalised_rows(wh: Any, sql_or_relation: str) -> list[tuple]:
    """Rows of a query as sorted tuples that compare across engines: timestamps as UTC instants,
    floats to 1e-9, JSON text parsed (key order and spacing differ between engines)."""
    import json
    from decimal import Decimal

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC)
        if isinstance(v, float | Decimal):
            return round(float(v), 9)
        if isinstance(v, str) and v[:1] in "{[":
            try:
                return json.dumps(json.loads(v, parse_float=_number, parse_int=_number), sort_keys=True)
            except ValueError:
                return v
        return v

    def _number(text: str) -> float:  # 900 and 900.0 are the same number in JSON
        return round(float(text), 9)

    rows = wh.fetch_arrow(sql_or_relation).to_pylist()
    return sorted((tuple(value(v) for v in row.values()) for row in rows), key=repr)
