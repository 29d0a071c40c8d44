"""The warehouse interface: what crmflow's Python code may ask of any engine.

A `Warehouse` is one connection to one target. Open it with `open_warehouse(target)` (or
`backend.connect()`); every method below runs on that connection. SQL passed in is portable SQL
(`crmflow.warehouse.sql`: `$name` parameters with a dict); data goes in and out as Arrow tables.
The statements that differ between engines (writing Arrow, temp tables, upsert, insert-if-new) are
built here from portable pieces, or in the backend where the engines truly differ.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, Self

import pyarrow as pa
import pyarrow.compute as pc

from crmflow.warehouse.ddl import render_ddl
from crmflow.warehouse.sql import PreparedSQL, bind, is_relation, quote_identifier, quote_relation
from crmflow.warehouse.target import WarehouseTarget

WriteMode = Literal["append", "replace"]
_staging_counter = itertools.count()


def staging_name() -> str:
    """A fresh name for a short-lived staging relation on this process's connections."""
    return f"_crmflow_stage_{next(_staging_counter)}"


class WarehouseConnectionError(RuntimeError):
    """The warehouse cannot be opened; the message is one line naming it (never the password)."""


class Warehouse(ABC):
    dialect: ClassVar[str]
    param_style: ClassVar[str]
    schemas: ClassVar[Mapping[str, str]]  # logical schema (raw, ops, analytics, exports) -> engine schema
    type_names: ClassVar[Mapping[str, str]]  # portable type placeholders ({json}) -> engine type

    def __init__(self, target: WarehouseTarget) -> None:
        self.target = target
        self._con: Any = None  # the engine's connection while connected
        self._in_transaction = False

    @property
    def native(self) -> Any:
        """The engine's open connection (duckdb or psycopg), for modules not yet ported to the interface."""
        if self._con is None:
            raise RuntimeError(f"{self!r} is not connected; use it inside `with warehouse.connect():`")
        return self._con

    def _disconnected(self) -> None:
        self._con = None
        self._in_transaction = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target.redacted()!r})"

    # -- connection and transactions ------------------------------------------------------------

    @abstractmethod
    @contextmanager
    def connect(self) -> Iterator[Self]:
        """Open the connection, yield this warehouse, always close it."""

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """All of the block or none of it. Transactions do not nest (savepoints are not portable)."""
        if self._in_transaction:
            raise RuntimeError("a warehouse transaction is already open on this connection; they do not nest")
        self._run_native("begin transaction", None)
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            self._in_transaction = False
            self._run_native("rollback", None)
            raise
        self._in_transaction = False
        self._run_native("commit", None)

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction unless one is already open (for methods that issue several statements)."""
        if self._in_transaction:
            yield
        else:
            with self.transaction():
                yield

    # -- statements -----------------------------------------------------------------------------

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run portable SQL (several `;`-separated statements are allowed when there are no parameters)."""
        self._run_native(*self._bind(sql, params))

    def fetch_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a small result as Python tuples (counts, a few keys, `... returning`)."""
        return self._rows_native(*self._bind(sql, params))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row (None when there is no row): counts, max(...), flags."""
        rows = self.fetch_rows(sql, params)
        return rows[0][0] if rows else None

    def fetch_arrow(self, sql_or_relation: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """A query's result, or a whole relation (`schema.table` or `table`), as an Arrow table."""
        sql = sql_or_relation
        if is_relation(sql_or_relation):
            sql = f"select * from {quote_relation(sql_or_relation.strip())}"
        return self._arrow_native(*self._bind(sql, params))

    def _bind(self, sql: str, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
        prepared: PreparedSQL = bind(sql, params, self.param_style)
        return prepared.sql, prepared.params

    @abstractmethod
    def _run_native(self, sql: str, params: dict[str, Any] | None) -> None: ...

    @abstractmethod
    def _rows_native(self, sql: str, params: dict[str, Any] | None) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _arrow_native(self, sql: str, params: dict[str, Any] | None) -> pa.Table: ...

    # -- tables ---------------------------------------------------------------------------------

    def write_arrow(self, table: pa.Table, relation: str, mode: WriteMode = "append") -> None:
        """Append `table` to an existing relation (by column name), or replace the relation with it."""
        if mode not in ("append", "replace"):
            raise ValueError(f"write_arrow mode {mode!r}: expected 'append' or 'replace'")
        with self._atomic():
            if mode == "replace":
                self._create_table_from_arrow(relation, table.schema, temporary=False)
            self._append_arrow(table, relation)

    def create_temp_table(self, name: str, table: pa.Table) -> str:
        """A temporary table `name` holding `table` until the connection closes (replaced if it exists)."""
        with self._atomic():
            self._create_table_from_arrow(name, table.schema, temporary=True)
            self._append_arrow(table, name)
        return name

    @abstractmethod
    def analyze(self, *relations: str) -> None:
        """Refresh the planner statistics of tables just loaded or rebuilt.

        PostgreSQL plans from statistics that only ANALYZE gathers (autovacuum may be off, and comes
        late); DuckDB keeps its own as it writes, so it does nothing there.
        """

    def drop_table(self, relation: str) -> None:
        self.execute(f"drop table if exists {quote_relation(relation)}")

    @abstractmethod
    def table_exists(self, relation: str) -> bool:
        """True for a table or view visible under this name (`schema.table`, or a bare/temp name)."""

    @abstractmethod
    def _create_table_from_arrow(self, relation: str, schema: pa.Schema, temporary: bool) -> None:
        """(Re)create `relation` empty, with columns typed from the Arrow schema."""

    @abstractmethod
    def _append_arrow(self, table: pa.Table, relation: str) -> None:
        """Bulk-insert `table` into `relation` by column name (the engine's fast path, not row inserts)."""

    @contextmanager
    def _staged(self, table: pa.Table) -> Iterator[str]:
        """`table` as a relation name usable in SQL for the length of the block.

        Used inside a transaction: on an error the rollback removes the temp table, so it is dropped
        only on success (a drop inside an aborted PostgreSQL transaction would hide the real error).
        """
        name = self.create_temp_table(staging_name(), table)
        yield name
        self.drop_table(name)

    # -- the statements that differ: upsert and insert-if-new ---------------------------------------

    def upsert(self, relation: str, table: pa.Table, key_columns: Sequence[str]) -> None:
        """Insert rows whose key is new, update every other column where it exists.

        `key_columns` must carry a primary key or unique constraint on `relation`; keys must be unique
        within `table` (which duplicate would win is not defined, so it is an error).
        """
        columns = _check_keys(table, key_columns, relation)
        updates = [c for c in columns if c not in key_columns]
        action = "do nothing"
        if updates:
            action = "do update set " + ", ".join(
                f"{quote_identifier(c)} = excluded.{quote_identifier(c)}" for c in updates
            )
        with self._atomic(), self._staged(table) as staged:
            self.execute(_insert_select(relation, staged, columns, key_columns) + " " + action)

    def insert_new_returning(self, relation: str, table: pa.Table, key_columns: Sequence[str]) -> pa.Table:
        """Insert the rows whose key is not in `relation` yet; return the keys actually inserted.

        `insert ... on conflict (keys) do nothing returning keys`: a row already present (or inserted
        concurrently by another writer) is skipped and not returned. Same key rules as `upsert`.
        """
        columns = _check_keys(table, key_columns, relation)
        returning = ", ".join(quote_identifier(c) for c in key_columns)
        with self._atomic(), self._staged(table) as staged:
            rows = self.fetch_rows(
                _insert_select(relation, staged, columns, key_columns) + f" do nothing returning {returning}"
            )
        key_fields = [table.schema.field(c) for c in key_columns]
        values = list(zip(*rows, strict=True)) if rows else [[] for _ in key_columns]
        return pa.table({f.name: pa.array(v, f.type) for f, v in zip(key_fields, values, strict=True)})

    # -- schemas and DDL --------------------------------------------------------------------------

    def schema(self, logical: str) -> str:
        """The engine schema of a logical one: 'raw' -> crm_raw on PostgreSQL, main on DuckDB (for now)."""
        try:
            return self.schemas[logical]
        except KeyError:
            raise ValueError(
                f"unknown schema {logical!r}; expected one of {', '.join(self.schemas)}"
            ) from None

    def relation(self, logical_schema: str, table: str) -> str:
        return f"{self.schema(logical_schema)}.{table}"

    def render(self, template: str) -> str:
        """Portable DDL template (`{raw}.x`, `{json}`) -> this engine's SQL."""
        return render_ddl(template, self.schemas, self.type_names)

    @abstractmethod
    def ensure_schemas(self) -> None:
        """Create the project's schemas when missing (idempotent)."""

    @abstractmethod
    def lock_for_migrations(self) -> None:
        """Inside a transaction: keep other processes from migrating at the same time."""


def _check_keys(table: pa.Table, key_columns: Sequence[str], relation: str) -> list[str]:
    columns = table.column_names
    if not key_columns:
        raise ValueError(f"{relation}: key_columns is empty")
    missing = [c for c in key_columns if c not in columns]
    if missing:
        raise ValueError(
            f"{relation}: key column(s) {', '.join(missing)} not in the Arrow table ({', '.join(columns)})"
        )
    if table.num_rows:
        counts = table.group_by(list(key_columns)).aggregate([([], "count_all")])
        duplicated = counts.filter(pc.greater(counts["count_all"], 1))
        if duplicated.num_rows:
            example = {c: duplicated[c][0].as_py() for c in key_columns}
            raise ValueError(
                f"{relation}: {duplicated.num_rows} key(s) appear more than once in the rows to write, e.g. {example}"
            )
    return columns


def _insert_select(relation: str, staged: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
    column_list = ", ".join(quote_identifier(c) for c in columns)
    keys = ", ".join(quote_identifier(c) for c in key_columns)
    return (
        f"insert into {quote_relation(relation)} ({column_list}) "
        f"select {column_list} from {quote_relation(staged)} on conflict ({keys})"
    )
