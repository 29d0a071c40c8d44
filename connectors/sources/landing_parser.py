"""The landing-file parser: an in-memory DuckDB used as a parsing library, whatever the warehouse is.

Issue 14 allows this one DuckDB outside the warehouse backend. Landing bytes are validated here with
the set-based SQL of sql_parts / rules / contracts (DuckDB SQL: regexes, json_transform, lists);
what comes out (rows to load, quarantine rows, per-file counts) is Arrow, written to the warehouse
through the interface, so the same verdicts reach DuckDB and PostgreSQL.

On a PostgreSQL warehouse the parser has its own memory limit (CRMFLOW_INGEST_MEMORY_LIMIT) and
spills to a temporary folder that is removed afterwards.

On a DuckDB warehouse, ingestion (`open_parser(..., warehouse=wh)`) parses on the warehouse's own
connection instead, in temp tables, so validated rows reach the raw tables by `insert ... select` and
never cross Python as Arrow (issue 20: the Arrow hop plus the checkpoint of Arrow-appended rows cost
the 100k events load ~6 s CPU). The memory limit is then set on the warehouse for the length of the
ingest and restored afterwards; DuckDB spills to the warehouse's own temp folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from connectors.sources.reference import load_reference_tables
from connectors.sources.time_range import AcceptedTimes, load_accepted_times
from crmflow.warehouse import Warehouse

Parser = duckdb.DuckDBPyConnection


class ParseFailed(Exception):
    """Reading or validating lines raised: the files' content broke the parser (not the warehouse:
    a failed write or commit is not caught as this)."""


# The parser's own temp tables (reference lists, accepted times): dropped when it is the warehouse's.
_SETUP_TABLES = ("_ref_currencies", "_ref_timezones", "_accepted_times")


@contextmanager
def open_parser(
    accepted: AcceptedTimes | None = None, as_of: datetime | None = None, memory_limit: str | None = None,
    warehouse: Warehouse | None = None,
) -> Iterator[Parser]:
    """An in-memory DuckDB, always closed; with `accepted` and `as_of`, the reference tables and the
    accepted time range the landing contracts' rules read are loaded. With a DuckDB `warehouse`, the
    warehouse's own connection (see the module docstring; `shares_connection` tells which)."""
    if warehouse is not None and warehouse.dialect == "duckdb":
        with _on_warehouse(warehouse.native, memory_limit) as con:
            if accepted is not None and as_of is not None:
                load_reference_tables(con)
                load_accepted_times(con, accepted, as_of)
            yield con
        return
    with tempfile.TemporaryDirectory(prefix="crmflow-parse-") as spill:
        config = {"temp_directory": spill} | ({"memory_limit": memory_limit} if memory_limit else {})
        con = duckdb.connect(config=config)
        try:
            con.execute("set TimeZone = 'UTC'")  # timestamptz text and casts as on the warehouse
            if accepted is not None and as_of is not None:
                load_reference_tables(con)
                load_accepted_times(con, accepted, as_of)
            yield con
        finally:
            con.close()


@contextmanager
def _on_warehouse(con: Parser, memory_limit: str | None) -> Iterator[Parser]:
    previous = con.execute("select current_setting('memory_limit')").fetchone()[0]
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    try:
        yield con
    finally:
        # The setting reads back rounded down to 0.1 GiB: setting that text again would shrink the
        # limit with every ingest, so the default is restored by a reset, exactly.
        con.execute("reset memory_limit")
        if con.execute("select current_setting('memory_limit')").fetchone()[0] != previous:
            con.execute(f"set memory_limit = '{previous}'")
        con.execute("; ".join(f"drop table if exists {name}" for name in _SETUP_TABLES))


def shares_connection(warehouse: Warehouse, parser: Parser) -> bool:
    """True when the parser is the warehouse's own DuckDB connection (its temp tables are readable
    by warehouse SQL, so rows can move by SQL instead of Arrow)."""
    return warehouse.dialect == "duckdb" and parser is warehouse.native


def create_staged(parser: Parser, name: str, select_sql: str, params: Mapping[str, Any] | None = None) -> None:
    """Temp table `name` from a validating query; the query failing on the content is ParseFailed."""
    try:
        parser.execute(f"create or replace temp table {name} as {select_sql}", dict(params) if params else None)
    except (duckdb.IOException, duckdb.InterruptException):
        raise  # the disk or the operator, not the file
    except duckdb.Error as exc:  # out of memory on a huge value, an internal parser error, ...
        raise ParseFailed() from exc


def parsed(parser: Parser, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
    """A parser query's result as an Arrow table (to write to the warehouse)."""
    return parser.sql(sql, params=dict(params) if params else None).to_arrow_table()


def settle(parser: Parser) -> None:
    """Finish a result another module left half-read (DuckDB refuses register/unregister until then)."""
    try:
        parser.fetchall()
    except duckdb.InvalidInputException:  # no open result
        pass


def mirror(warehouse: Warehouse, parser: Parser, relation: str) -> bool:
    """Copy a small warehouse table into the parser under the same name (False when missing or empty);
    a parser on the warehouse's connection reads the table itself."""
    if not warehouse.table_exists(relation):
        return False
    if shares_connection(warehouse, parser):
        return bool(warehouse.scalar(f"select count(*) > 0 from {relation}"))
    rows = warehouse.fetch_arrow(relation)
    if not rows.num_rows:
        return False
    parser.register("_mirrored", rows)
    try:
        parser.execute(f"create or replace table {relation} as select * from _mirrored")
    finally:
        parser.unregister("_mirrored")
    return True
