"""Which warehouse relations exist: inputs built by other stages may be missing (empty warehouse,
intelligence not run yet); callers treat a missing relation as empty instead of failing."""

from __future__ import annotations

import duckdb


def existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables "
        # temp objects live in catalog 'temp' with schema 'main': count only the warehouse's own
        "where table_schema = current_schema() and table_catalog = current_database()"
    ).fetchall()
    return {row[0] for row in rows}


def relation_columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = current_schema() and table_catalog = current_database() and table_name = ?",
        [name],
    ).fetchall()
    return {row[0] for row in rows}
