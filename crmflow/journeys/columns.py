"""Profile columns the journey config may name (filters, templates).

Read from the warehouse when customer_profile exists; otherwise the static contract list below, so
`crmflow journeys validate` works before dbt has ever run.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from crmflow.warehouse import as_warehouse

# customer_profile columns (and their types) from the shared naming contract.
PROFILE_COLUMN_TYPES: dict[str, str] = {
    "user_id": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR", "push_token": "VARCHAR",
    "first_name": "VARCHAR", "email_opt_in": "BOOLEAN", "sms_opt_in": "BOOLEAN",
    "push_opt_in": "BOOLEAN", "locale": "VARCHAR", "timezone": "VARCHAR", "country": "VARCHAR",
    "city": "VARCHAR", "customer_type": "VARCHAR", "company_name": "VARCHAR", "industry": "VARCHAR",
    "employees": "INTEGER", "birth_date": "DATE", "gender": "VARCHAR", "contract_end_date": "DATE",
    "referred_by": "VARCHAR", "acquisition_channel": "VARCHAR",
    "registered_at": "TIMESTAMP WITH TIME ZONE", "first_order_at": "TIMESTAMP WITH TIME ZONE",
    "last_order_at": "TIMESTAMP WITH TIME ZONE", "order_count": "BIGINT", "revenue": "DECIMAL(18,2)",
    "last_activity_at": "TIMESTAMP WITH TIME ZONE", "days_since_last_activity": "INTEGER",
    "days_since_last_purchase": "INTEGER", "favourite_category": "VARCHAR",
    "as_of": "TIMESTAMP WITH TIME ZONE",
}
PROFILE_COLUMNS: tuple[str, ...] = tuple(PROFILE_COLUMN_TYPES)

_SQL_TYPE_OF_ARROW = {
    pa.bool_(): "BOOLEAN", pa.int8(): "SMALLINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER",
    pa.int64(): "BIGINT", pa.float32(): "REAL", pa.float64(): "DOUBLE PRECISION", pa.date32(): "DATE",
}


def sql_type_of(arrow_type: pa.DataType) -> str:
    """A portable SQL type name for a result column's Arrow type (what filters cast values to)."""
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    return _SQL_TYPE_OF_ARROW.get(arrow_type, "VARCHAR")


def profile_columns(con: Any | None) -> dict[str, str]:
    """Column name -> SQL type of customer_profile (warehouse first, contract list as fallback).

    Read from the relation the engine resolves (an empty result's Arrow schema), so the same
    customer_profile SQL reads is described, whatever schema it lives in."""
    if con is None or not table_exists(con, "customer_profile"):
        return dict(PROFILE_COLUMN_TYPES)
    schema = as_warehouse(con).fetch_arrow("select * from customer_profile limit 0").schema
    return {f.name: sql_type_of(f.type) for f in schema}


def table_exists(con: Any, name: str) -> bool:
    """True when `name` is visible (a Warehouse or a raw DuckDB connection)."""
    return as_warehouse(con).table_exists(name)


def require_tables(con: Any, names: list[str], needed_by: str) -> None:
    missing = [n for n in names if not table_exists(con, n)]
    if missing:
        raise RuntimeError(
            f"{needed_by}: table(s) {', '.join(missing)} not found in the warehouse; "
            "build the customer marts (dbt) first"
        )
