"""Dedupe valid staged rows against the batch and the raw table, then write them (set-based).

- events (no version column): first copy of a message_id wins, in (file path, line) order; a copy
  already in raw_events, or a later copy in the batch, is a duplicate.
- registrations / orders (version = updated_at): the newest version per key wins; ties go to the
  later file (path order), then the later line. Against the stored row: an older version, or the
  same updated_at with identical content, is a duplicate; a newer one replaces the stored row.

The batch is the parser's `_staged` (landing_parser.py); the raw tables are in the warehouse. Within
the batch the dedupe runs in the parser; against stored rows it runs on the warehouse in portable
SQL over a staged temp table (only the keys for events, the batch's winners for versioned rows).
When the parser is the DuckDB warehouse's own connection (landing_parser.shares_connection), the
rows and winners go from `_staged` to the warehouse by SQL, not as Arrow.
Leaves parser temp table `_loaded_counts` (file_id, rows_loaded): how many rows of each file were written.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from connectors.sources.landing_parser import Parser, parsed, shares_connection
from connectors.sources.rules import SourceContract
from crmflow.warehouse import Warehouse
from crmflow.warehouse.dialect import binary_order


def load_valid_rows(warehouse: Warehouse, parser: Parser, contract: SourceContract, loaded_at: datetime) -> None:
    if contract.version is None:
        _load_first_copies(warehouse, parser, contract, loaded_at)
    else:
        _load_newest_versions(warehouse, parser, contract, loaded_at)


def _load_first_copies(warehouse: Warehouse, parser: Parser, contract: SourceContract, loaded_at: datetime) -> None:
    """First copy wins. The dedupe runs on narrow rows (key, file, line) and yields the duplicates;
    the wide rows go from _staged straight to the raw table (no wide copy on the warehouse)."""
    key = contract.key
    columns = [name for name, _ in contract.outputs]
    table = f"raw_{contract.source}"
    parser.execute(f"""
        create or replace temp table _copies as
        select file_id, line_number, {key},
               row_number() over (partition by {key} order by file_id, line_number) as copy_no
        from _staged where reason is null
    """)
    stored = _stored_keys(warehouse, parser, table, key)
    parser.register("_stored_keys", stored)
    try:
        parser.execute(f"""
            create or replace temp table _duplicates as
            select file_id, line_number from _copies
            where copy_no > 1 or {key} in (select {key} from _stored_keys)
        """)
    finally:
        parser.unregister("_stored_keys")
    rows_sql = f"""select {', '.join('s.' + c for c in columns)}, f.rel_path as _source_file,
                   s.line_number as _source_line, $loaded_at::timestamptz as _loaded_at
            from _staged s join _batch_files f using (file_id)
            where s.reason is null
              and not exists (select 1 from _duplicates d
                              where d.file_id = s.file_id and d.line_number = s.line_number)"""
    if shares_connection(warehouse, parser):
        column_list = ", ".join([*columns, "_source_file", "_source_line", "_loaded_at"])
        parser.execute(f"insert into {table} ({column_list}) {rows_sql}", {"loaded_at": loaded_at})
    else:
        rows = parsed(parser, rows_sql, {"loaded_at": loaded_at})
        if rows.num_rows:
            warehouse.write_arrow(json_typed(rows, contract.json_outputs), table)
    parser.execute("""
        create or replace temp table _loaded_counts as
        select file_id, sum(n)::bigint as rows_loaded from (
            select file_id, count(*) as n from _staged where reason is null group by file_id
            union all
            select file_id, -count(*) from _duplicates group by file_id
        ) group by file_id
    """)


def json_typed(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """Mark JSON text columns with Arrow's JSON type (zero-copy): DuckDB then takes them as JSON
    without re-validating every value (0.07 s vs 0.17 s per 1.4M values), PostgreSQL as jsonb."""
    for name in columns:
        i = table.schema.get_field_index(name)
        column = table.column(i)
        json_column = pa.chunked_array(
            [pa.ExtensionArray.from_storage(pa.json_(), chunk.cast(pa.string())) for chunk in column.chunks],
            type=pa.json_(),
        )
        table = table.set_column(i, name, json_column)
    return table


def _stored_keys(warehouse: Warehouse, parser: Parser, table: str, key: str) -> pa.Table:
    """The batch's first-copy keys already in the raw table (one narrow staged join on the warehouse).

    The stored copies that can match lie in [min, max] of this pass's keys: the constant range
    lets DuckDB skip row groups by their min/max (zonemaps) instead of probing all history
    (message ids carry their time, so a month's pass touches about a month of raw_events).
    """
    low, high = parser.execute(f"select min({key}), max({key}) from _copies").fetchall()[0]
    if shares_connection(warehouse, parser):
        return parsed(parser, f"""select {key} from _copies where copy_no = 1
                                  and {key} in (select {key} from {table} where {key} >= $low and {key} <= $high)""",
                      {"low": low, "high": high})
    keys = parsed(parser, f"select {key} from _copies where copy_no = 1")
    if not keys.num_rows:
        return keys
    staged = warehouse.create_temp_table("_ingest_keys", keys)
    def code_point(expr: str) -> str:  # the parser's min and max are in binary (code point) order
        return f"({binary_order(expr, warehouse.dialect)})"

    in_range = f"{code_point(key)} >= {code_point('$low')} and {code_point(key)} <= {code_point('$high')}"
    found = warehouse.fetch_arrow(
        f"select k.{key} from {staged} k where k.{key} in (select {key} from {table} where {in_range})",
        {"low": low, "high": high},
    )
    warehouse.drop_table(staged)
    return found


def _stage_winners(warehouse: Warehouse, parser: Parser, contract: SourceContract, winners_sql: str) -> str | None:
    """The batch's winners as warehouse temp table `_ingest_winners` (its name), or None when there are none.
    On the DuckDB warehouse's own connection they stay in DuckDB; otherwise they cross as Arrow."""
    staged = "_ingest_winners"
    if shares_connection(warehouse, parser):
        parser.execute(f"create or replace temp table {staged} as {winners_sql}")
        if parser.execute(f"select count(*) from {staged}").fetchall()[0][0]:
            return staged
        warehouse.drop_table(staged)
        return None
    winners = parsed(parser, winners_sql)
    if not winners.num_rows:
        return None
    return warehouse.create_temp_table(staged, json_typed(winners, contract.json_outputs))


def _load_newest_versions(warehouse: Warehouse, parser: Parser, contract: SourceContract, loaded_at: datetime) -> None:
    key = contract.key
    version = contract.version
    columns = [name for name, _ in contract.outputs]
    table = f"raw_{contract.source}"
    winners_sql = f"""
        select * exclude (_rank) from (
            select s.file_id, {', '.join('s.' + c for c in columns)},
                   f.rel_path as _source_file, s.line_number as _source_line,
                   row_number() over (partition by s.{key}
                                      order by s.{version} desc, s.file_id desc, s.line_number desc) as _rank
            from _staged s join _batch_files f using (file_id)
            where s.reason is null
        ) v where _rank = 1
    """
    staged = _stage_winners(warehouse, parser, contract, winners_sql)
    if staged is None:
        parser.execute("create or replace temp table _loaded_counts (file_id integer, rows_loaded bigint)")
        return
    json_type = warehouse.type_names["json"]

    def staged_value(column: str) -> str:  # the staged text of a JSON column, typed like the raw column
        return f"cast(w.{column} as {json_type})" if column in contract.json_outputs else f"w.{column}"

    content_differs = " or ".join(f"{staged_value(c)} is distinct from r.{c}" for c in columns if c != key)
    later_file = f"{binary_order('w._source_file', warehouse.dialect)} > {binary_order('r._source_file', warehouse.dialect)}"
    warehouse.drop_table("_ingest_loaded")
    warehouse.execute(f"""
        create temp table _ingest_loaded as
        select w.* from {staged} w left join {table} r on r.{key} = w.{key}
        where r.{key} is null
           or w.{version} > r.{version}
           or (w.{version} = r.{version} and ({content_differs})
               and ({later_file}
                    or (w._source_file = r._source_file and w._source_line >= r._source_line)))
    """)
    # Replaced keys are deleted first: an UPDATE of every column is slower, and an upsert cannot
    # change a row twice in one transaction on DuckDB.
    warehouse.execute(f"delete from {table} where {key} in (select {key} from _ingest_loaded)")
    column_list = ", ".join(columns)
    warehouse.execute(
        f"""insert into {table} ({column_list}, _source_file, _source_line, _loaded_at)
            select {', '.join(staged_value(c) for c in columns)}, w._source_file, w._source_line, $loaded_at
            from _ingest_loaded w""",
        {"loaded_at": loaded_at},
    )
    counts = warehouse.fetch_arrow(
        "select file_id, count(*) as rows_loaded from _ingest_loaded group by file_id"
    )
    warehouse.drop_table("_ingest_loaded")
    warehouse.drop_table(staged)
    parser.register("_warehouse_counts", counts)
    try:
        parser.execute("create or replace temp table _loaded_counts as "
                       "select file_id, rows_loaded::bigint as rows_loaded from _warehouse_counts")
    finally:
        parser.unregister("_warehouse_counts")
