"""Profile columns the journey config may name (filters, templates).

Read from the warehouse when customer_profile exists; otherwise the static contract list below, so
`crmflow journeys validate` works before dbt has ever run.
"""

from __future__ import annotations

import duckdb

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


def profile_columns(con: duckdb.DuckDBPyConnection | None) -> dict[str, str]:
    """Column name -> SQL type of customer_profile (warehouse first, contract list as fallback)."""
    if con is None or not table_exists(con, "customer_profile"):
        return dict(PROFILE_COLUMN_TYPES)
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_name = 'customer_profile' order by ordinal_position"
    ).fetchall()
    return {name: dtype for name, dtype in rows}


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("select count(*) from information_schema.tables where table_name = ?", [name]).fetchone()[0]
    )


def require_tables(con: duckdb.DuckDBPyConnection, names: list[str], needed_by: str) -> None:
    missing = [n for n in names if not table_exists(con, n)]
    if missing:
        raise RuntimeError(
            f"{needed_by}: table(s) {', '.join(missing)} not found in the warehouse; "
            "build the customer marts (dbt) first"
        )
