"""Test helpers for journeys: the customer marts and ops tables with exactly the contract columns,
filled with crafted rows (tests never need dbt), and small YAML builders.

`make_customer_tables` / `insert_rows` take a raw DuckDB connection or a Warehouse (DuckDB or
PostgreSQL); with a Warehouse the rows go in as typed Arrow through `write_arrow`, the same on both.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from crmflow.journeys.columns import PROFILE_COLUMN_TYPES
from crmflow.journeys.loader import parse_journey_text
from crmflow.journeys.schema import Journey
from crmflow.journeys.tables import ensure_journey_tables
from crmflow.warehouse import Warehouse, as_warehouse

TABLES: dict[str, dict[str, str]] = {
    "customer_profile": PROFILE_COLUMN_TYPES,
    "customer_segments": {"user_id": "VARCHAR", "segment_family": "VARCHAR", "segment": "VARCHAR",
                          "as_of": "TIMESTAMPTZ"},
    "customer_segment_history": {"user_id": "VARCHAR", "segment_family": "VARCHAR", "segment": "VARCHAR",
                                 "valid_from": "TIMESTAMPTZ", "valid_to": "TIMESTAMPTZ"},
    "customer_lifecycle": {"user_id": "VARCHAR", "lifecycle_stage": "VARCHAR", "stage_since": "TIMESTAMPTZ",
                           "as_of": "TIMESTAMPTZ"},
    "customer_lifecycle_history": {"user_id": "VARCHAR", "lifecycle_stage": "VARCHAR",
                                   "valid_from": "TIMESTAMPTZ", "valid_to": "TIMESTAMPTZ"},
    "customer_value_tier": {"user_id": "VARCHAR", "customer_type": "VARCHAR", "value_tier": "VARCHAR",
                            "b2b_score": "DOUBLE", "b2b_grade": "VARCHAR", "discount_pct": "DOUBLE",
                            "sla_hours": "INTEGER", "support_level": "VARCHAR", "as_of": "TIMESTAMPTZ"},
    "customer_value_tier_history": {"user_id": "VARCHAR", "value_tier": "VARCHAR", "b2b_grade": "VARCHAR",
                                    "valid_from": "TIMESTAMPTZ", "valid_to": "TIMESTAMPTZ"},
    "customer_tags": {"user_id": "VARCHAR", "tag": "VARCHAR", "tag_source": "VARCHAR", "added_at": "TIMESTAMPTZ"},
    "events_stitched": {"message_id": "VARCHAR", "user_id": "VARCHAR", "anonymous_id": "VARCHAR",
                        "event_type": "VARCHAR", "event_name": "VARCHAR", "event_at": "TIMESTAMPTZ",
                        "properties": "JSON", "context": "JSON"},
    "stg_shop__orders": {"order_id": "VARCHAR", "user_id": "VARCHAR", "ordered_at": "TIMESTAMPTZ",
                         "updated_at": "TIMESTAMPTZ", "status": "VARCHAR", "amount": "DECIMAL(18,2)",
                         "currency": "VARCHAR", "channel": "VARCHAR", "items": "JSON"},
}


def ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def profile(user_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "user_id": user_id, "email": f"{user_id}@example.com", "phone": "+4915100000000",
        "push_token": f"tok-{user_id}", "first_name": "Ann", "email_opt_in": True, "sms_opt_in": True,
        "push_opt_in": True, "locale": "en-US", "timezone": "UTC", "country": "DE", "city": "Berlin",
        "customer_type": "individual", "registered_at": ts("2026-01-01T00:00:00"), "order_count": 0,
        "revenue": 0,
    }
    row.update(overrides)
    return row


# Arrow types of the contract column types above, and how a crafted value becomes one.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(), "JSON": pa.string(), "BOOLEAN": pa.bool_(), "INTEGER": pa.int32(),
    "BIGINT": pa.int64(), "DOUBLE": pa.float64(), "DATE": pa.date32(), "DECIMAL(18,2)": pa.decimal128(18, 2),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
}


def _coerce(value: Any, arrow_type: pa.DataType) -> Any:
    if value is None or not isinstance(value, str | int | float):
        return value
    if pa.types.is_timestamp(arrow_type) and isinstance(value, str):
        return ts(value)
    if pa.types.is_date(arrow_type) and isinstance(value, str):
        return date.fromisoformat(value)
    if pa.types.is_decimal(arrow_type):
        return Decimal(str(value))
    return value


def _sql_type(sql_type: str, wh: Warehouse) -> str:
    return {"DOUBLE": "DOUBLE PRECISION", "JSON": wh.render("{json}")}.get(sql_type, sql_type)


def insert_rows(con: duckdb.DuckDBPyConnection | Warehouse, table: str, rows: Iterable[dict[str, Any]]) -> None:
    columns = list(TABLES[table]) if table in TABLES else None
    rows = list(rows)
    if not rows:
        return
    columns = columns or list(rows[0])
    unknown = {k for r in rows for k in r} - set(columns)
    if unknown:
        raise KeyError(f"{table}: not contract columns: {sorted(unknown)}")
    if isinstance(con, Warehouse):
        if table in TABLES:
            types = {c: _ARROW_TYPES[TABLES[table][c]] for c in columns}
            arrow = pa.table({c: pa.array([_coerce(r.get(c), types[c]) for r in rows], types[c]) for c in columns})
        else:
            arrow = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
        con.write_arrow(arrow, table)
        return
    # One set-based insert through a registered frame (executemany is slow for thousands of rows).
    frame = pd.DataFrame([[r.get(c) for c in columns] for r in rows], columns=columns, dtype=object)
    con.register("_helper_rows", frame)
    try:
        casts = ", ".join(f"cast({c} as {TABLES[table][c]})" if table in TABLES else c for c in columns)
        con.execute(f"insert into {table} ({', '.join(columns)}) select {casts} from _helper_rows")
    finally:
        con.unregister("_helper_rows")


def make_customer_tables(con: duckdb.DuckDBPyConnection | Warehouse, **rows: Sequence[dict[str, Any]]) -> None:
    """Create every mart the journeys read (contract columns) and fill the ones given by name,
    e.g. make_customer_tables(con, customer_profile=[profile("u1")], events_stitched=[...])."""
    wh = as_warehouse(con)
    if wh.dialect == "duckdb":
        wh.execute("set TimeZone = 'UTC'")  # PostgreSQL sessions are UTC already
    for table, columns in TABLES.items():
        cols = ", ".join(f"{name} {_sql_type(ctype, wh)}" for name, ctype in columns.items())
        wh.execute(f"create table if not exists {table} ({cols})")
    ensure_journey_tables(wh)  # all migrations: the ops tables (1) and the journey tables (10)
    for table, table_rows in rows.items():
        insert_rows(con, table, table_rows)


def event(message_id: str, user_id: str, name: str, at: str) -> dict[str, Any]:
    return {"message_id": message_id, "user_id": user_id, "anonymous_id": None, "event_type": "track",
            "event_name": name, "event_at": ts(at), "properties": "{}", "context": "{}"}


def order(order_id: str, user_id: str, at: str, status: str = "paid", amount: float = 50.0) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "ordered_at": ts(at), "updated_at": ts(at),
            "status": status, "amount": amount, "currency": "EUR", "channel": "web", "items": "[]"}


def journey_from_yaml(text: str, name: str | None = None) -> Journey:
    """Parse a YAML journey (dedented); fail the test with the validation errors if any."""
    text = textwrap.dedent(text)
    key = name or _id_of(text)
    loaded = parse_journey_text(text, Path(f"{key}.yaml"))
    if not loaded.ok:
        raise AssertionError(loaded.error_text())
    assert loaded.journey is not None
    return loaded.journey


def _id_of(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("id:"):
            return line.split(":", 1)[1].strip()
    return "journey"


EMAIL_TEMPLATE = """
  hello:
    channel: email
    locales:
      en-US: {subject: "Hi {{ first_name }}", body: "Welcome, {{ first_name }}!"}
      zh-CN: {subject: "你好 {{ first_name }}", body: "欢迎！"}
"""


def ledger(con: duckdb.DuckDBPyConnection, journey_id: str | None = None) -> list[tuple]:
    where = "where journey_id = ?" if journey_id else ""
    args = [journey_id] if journey_id else []
    return con.execute(
        f"select user_id, step_id, channel, variant, state, reason from send_ledger {where} order by user_id, step_id",
        args,
    ).fetchall()


def enrolments(con: duckdb.DuckDBPyConnection, journey_id: str) -> list[tuple]:
    return con.execute(
        "select user_id, status, current_step, exit_reason, is_holdout from journey_enrolments "
        "where journey_id = ? order by user_id, entered_at", [journey_id],
    ).fetchall()
