"""Which warehouse relations exist: inputs built by other stages may be missing (empty warehouse,
intelligence not run yet); callers treat a missing relation as empty instead of failing."""

from __future__ import annotations

import duckdb


def existing_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}


def relation_columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = current_schema() and table_name = ?",
        [name],
    ).fetchall()
    return {row[0] for row in rows}
