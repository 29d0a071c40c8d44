"""crmflow's warehouse: one interface (`Warehouse`) over DuckDB (embedded default) and PostgreSQL.

    with open_warehouse() as wh:              # CRMFLOW_WAREHOUSE: a DuckDB path or postgresql://...
        apply_migrations(wh)
        wh.write_arrow(table, "raw_orders")
        orders = wh.fetch_arrow("select * from raw_orders where status = $status", {"status": "paid"})

The raw DuckDB helpers (`connect`, `transaction`, `ensure_raw_tables`, `ensure_ops_tables` and the
`*_DDL` strings) stay for the modules not yet ported to the interface; they behave as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crmflow.warehouse.base import Warehouse, WarehouseConnectionError
from crmflow.warehouse.ddl import (
    OPS_DDL,
    QUARANTINE_DDL,
    RAW_DDL,
    SOURCES,
    TAGS_DDL,
    ensure_ops_tables,
    ensure_raw_tables,
)
from crmflow.warehouse.duckdb import DuckDBWarehouse, connect, transaction
from crmflow.warehouse.migrations import MIGRATIONS, apply_migrations
from crmflow.warehouse.target import WarehouseConfigError, WarehouseTarget, parse_target

__all__ = [
    "MIGRATIONS",
    "OPS_DDL",
    "QUARANTINE_DDL",
    "RAW_DDL",
    "SOURCES",
    "TAGS_DDL",
    "DuckDBWarehouse",
    "Warehouse",
    "WarehouseConfigError",
    "WarehouseConnectionError",
    "WarehouseTarget",
    "apply_migrations",
    "as_warehouse",
    "connect",
    "ensure_ops_tables",
    "ensure_raw_tables",
    "open_warehouse",
    "parse_target",
    "transaction",
    "warehouse_for",
]


def warehouse_for(target: WarehouseTarget | str | Path | None = None, read_only: bool = False) -> Warehouse:
    """The backend for a target (None: CRMFLOW_WAREHOUSE), not yet connected.

    `read_only` is a DuckDB option (open the file beside a writer process); PostgreSQL ignores it.
    """
    if not isinstance(target, WarehouseTarget):
        target = parse_target(target)
    if target.kind == "duckdb":
        return DuckDBWarehouse(target, read_only=read_only)
    if target.kind == "spark":
        # Spark holds the analytics; crmflow's Python reads and writes the store (crmflow.settings).
        raise WarehouseConfigError(f"{target.redacted()} is a Spark warehouse: crmflow's own tables live in the "
                                   "store CRMFLOW_STATE (a DuckDB file or a postgresql:// URL), open that")
    # Imported here so DuckDB-only runs never load psycopg.
    from crmflow.warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse(target)


@contextmanager
def open_warehouse(
    target: WarehouseTarget | str | Path | None = None, read_only: bool = False
) -> Iterator[Warehouse]:
    """Connect to a target (None: CRMFLOW_WAREHOUSE), yield the warehouse, always close it."""
    with warehouse_for(target, read_only=read_only).connect() as warehouse:
        yield warehouse


def as_warehouse(con_or_warehouse: Warehouse | object) -> Warehouse:
    """A Warehouse for either a Warehouse (returned as is) or a raw DuckDB connection (wrapped).

    Ported functions accept both while their callers move to the interface one module at a time.
    """
    if isinstance(con_or_warehouse, Warehouse):
        return con_or_warehouse
    return DuckDBWarehouse.wrap(con_or_warehouse)  # type: ignore[arg-type]
