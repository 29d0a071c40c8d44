"""The DuckDB backend: the embedded default warehouse, one file.

DuckDB allows one writer process per file, so every writer opens, works and closes; the Dagster job
runs in one process (in_process_executor) so steps never write at the same time. For now every
logical schema is DuckDB's `main` (today's layout, so modules not yet ported keep working); the
separate schemas PostgreSQL has are the next step.

`connect` and `transaction` are the raw-connection helpers the modules not yet ported still use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from crmflow.warehouse.base import Warehouse, WarehouseConnectionError, WriteMode, staging_name
from crmflow.warehouse.ddl import DUCKDB_SCHEMAS, DUCKDB_TYPES
from crmflow.warehouse.sql import quote_identifier, quote_relation, split_relation
from crmflow.warehouse.target import WarehouseTarget

# What opening a DuckDB file held by another process raises (callers name the holder instead of
# importing duckdb themselves).
FILE_OPEN_ERRORS: tuple[type[Exception], ...] = (duckdb.IOException,)


def _open(path: Path | str, read_only: bool) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    # Session time zone UTC: timestamptz values print and cast the same on every machine.
    con.execute("set TimeZone = 'UTC'")
    return con


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its folder), yield a connection and always close it."""
    con = _open(path, read_only)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All of the block or none of it: begin, commit on success, roll back and re-raise on error."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    param_style = "duckdb"
    schemas = DUCKDB_SCHEMAS
    type_names = DUCKDB_TYPES

    def __init__(self, target: WarehouseTarget, read_only: bool = False) -> None:
        super().__init__(target)
        self.read_only = read_only

    @classmethod
    def wrap(cls, con: duckdb.DuckDBPyConnection) -> DuckDBWarehouse:
        """An already open DuckDB connection as a Warehouse (the caller keeps owning and closing it).

        The bridge while modules move to the interface: a ported function called with a raw
        connection by a caller not yet ported wraps it, and `warehouse.native` goes the other way.
        """
        path_rows = con.execute(
            "select path from duckdb_databases() where database_name = current_database()"
        ).fetchall()
        path = Path(path_rows[0][0]) if path_rows and path_rows[0][0] else Path(":memory:")
        warehouse = cls(WarehouseTarget(kind="duckdb", path=path))
        warehouse._con = con
        return warehouse

    @contextmanager
    def connect(self) -> Iterator[Self]:
        try:
            self._con = _open(self.target.path, self.read_only)
        except (duckdb.Error, OSError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise WarehouseConnectionError(
                f"cannot open the DuckDB warehouse {self.target.path}: {first_line}"
            ) from None
        try:
            yield self
        finally:
            self._con.close()
            self._disconnected()

    def _run_native(self, sql: str, params: dict[str, Any] | None) -> None:
        self.native.execute(sql, params)

    def _rows_native(self, sql: str, params: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        return self.native.execute(sql, params).fetchall()

    def _arrow_native(self, sql: str, params: dict[str, Any] | None) -> pa.Table:
        relation = self.native.sql(sql, params=params)
        if relation is None:
            raise ValueError("fetch_arrow needs a query that returns rows (select, with, values)")
        return relation.to_arrow_table()

    def analyze(self, *relations: str) -> None:
        pass  # DuckDB keeps its statistics as it writes

    def table_exists(self, relation: str) -> bool:
        schema, table = split_relation(relation)
        rows = self.fetch_rows(
            "select count(*) from information_schema.tables where table_name = $table and table_schema = $schema",
            {"table": table, "schema": schema or "main"},  # temp tables are temp.main.<name>
        )
        return rows[0][0] > 0

    @contextmanager
    def _registered(self, table: pa.Table) -> Iterator[str]:
        # A registered Arrow table is a view over the caller's memory: no copy before the insert.
        name = staging_name()
        self.native.register(name, table)
        try:
            yield name
        finally:
            self.native.unregister(name)

    _staged = _registered  # upsert / insert_new_returning read the Arrow table in place

    # DuckDB 2.0.0 loses rows: a table created empty and then given >= 122,880 rows (one row group)
    # in the same transaction reads as empty in joins (left join, semi join: 0 rows; count(*) is
    # right). So a new table is created and filled by one `create ... as select` from the Arrow
    # table, never create-empty-then-insert (tests/test_ingest_backends.py checks both paths).
    def create_temp_table(self, name: str, table: pa.Table) -> str:
        self._create_filled(name, table, temporary=True)
        return name

    def write_arrow(self, table: pa.Table, relation: str, mode: WriteMode = "append") -> None:
        if mode == "replace":
            self._create_filled(relation, table, temporary=False)
        else:
            super().write_arrow(table, relation, mode)

    def _create_filled(self, relation: str, table: pa.Table, temporary: bool) -> None:
        kind = "temp table" if temporary else "table"
        with self._registered(table) as source:
            self.execute(f"create or replace {kind} {quote_relation(relation)} as select * from {source}")

    def _create_table_from_arrow(self, relation: str, schema: pa.Schema, temporary: bool) -> None:
        kind = "temp table" if temporary else "table"
        with self._registered(schema.empty_table()) as empty:
            self.execute(f"create or replace {kind} {quote_relation(relation)} as select * from {empty}")

    def _append_arrow(self, table: pa.Table, relation: str) -> None:
        columns = ", ".join(quote_identifier(c) for c in table.column_names)
        with self._registered(table) as source:
            self.execute(f"insert into {quote_relation(relation)} ({columns}) select {columns} from {source}")

    def lock_for_migrations(self) -> None:
        """Nothing to lock: DuckDB has one writer process per file."""

    def ensure_schemas(self) -> None:
        """Nothing to create yet: on DuckDB every logical schema is `main` (see the module docstring)."""
