"""Dedupe valid staged rows against the batch and the raw table, then write them (set-based).

- events (no version column): first copy of a message_id wins, in (file path, line) order; a copy
  already in raw_events, or a later copy in the batch, is a duplicate.
- registrations / orders (version = updated_at): the newest version per key wins; ties go to the
  later file (path order), then the later line. Against the stored row: an older version, or the
  same updated_at with identical content, is a duplicate; a newer one replaces the stored row.

Leaves temp table `_loaded_counts` (file_id, rows_loaded): how many rows of each file were written.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from connectors.sources.rules import SourceContract


def load_valid_rows(con: duckdb.DuckDBPyConnection, contract: SourceContract, loaded_at: datetime) -> None:
    if contract.version is None:
        _load_first_copies(con, contract, loaded_at)
    else:
        _load_newest_versions(con, contract, loaded_at)


def _load_first_copies(con: duckdb.DuckDBPyConnection, contract: SourceContract, loaded_at: datetime) -> None:
    """First copy wins. The dedupe runs on narrow rows (key, file, line) and yields the duplicates;
    the wide rows go from _staged straight into the raw table in file/line order (no wide copy,
    and the table's row groups follow the files, so their min/max of the key stay tight)."""
    key = contract.key
    columns = [name for name, _ in contract.outputs]
    table = f"raw_{contract.source}"
    # The stored copies that can match lie in [min, max] of this pass's keys: the constant range
    # lets DuckDB skip row groups by their min/max (zonemaps) instead of probing all history
    # (message ids carry their time, so a month's pass touches about a month of raw_events).
    low, high = con.execute(f"select min({key}), max({key}) from _staged where reason is null").fetchone()
    con.execute(f"""
        create or replace temp table _duplicates as
        select file_id, line_number from (
            select file_id, line_number, {key},
                   row_number() over (partition by {key} order by file_id, line_number) as copy_no
            from _staged where reason is null
        ) v
        where copy_no > 1
           or {key} in (select {key} from {table} where {key} between $low and $high)
    """, {"low": low, "high": high})
    column_list = ", ".join(columns)
    con.execute(
        f"""insert into {table} ({column_list}, _source_file, _source_line, _loaded_at)
            select {', '.join('s.' + c for c in columns)}, f.rel_path, s.line_number, ?
            from _staged s join _batch_files f using (file_id)
            where s.reason is null
              and not exists (select 1 from _duplicates d
                              where d.file_id = s.file_id and d.line_number = s.line_number)""",
        [loaded_at],
    )
    con.execute("""
        create or replace temp table _loaded_counts as
        select file_id, sum(n)::bigint as rows_loaded from (
            select file_id, count(*) as n from _staged where reason is null group by file_id
            union all
            select file_id, -count(*) from _duplicates group by file_id
        ) group by file_id
    """)


def _load_newest_versions(con: duckdb.DuckDBPyConnection, contract: SourceContract, loaded_at: datetime) -> None:
    key = contract.key
    version = contract.version
    columns = [name for name, _ in contract.outputs]
    table = f"raw_{contract.source}"
    valid = f"""
        select s.file_id, {', '.join('s.' + c for c in columns)},
               f.rel_path as _source_file, s.line_number as _source_line
        from _staged s join _batch_files f using (file_id)
        where s.reason is null
    """
    content_differs = " or ".join(f"w.{c} is distinct from r.{c}" for c in columns if c != key)
    con.execute(f"""
        create or replace temp table _loaded as
        with winners as (
            select * from ({valid}) v
            qualify row_number() over (
                partition by v.{key} order by v.{version} desc, v.file_id desc, v._source_line desc) = 1
        )
        select w.* from winners w left join {table} r on r.{key} = w.{key}
        where r.{key} is null
           or w.{version} > r.{version}
           or (w.{version} = r.{version} and ({content_differs})
               and (w._source_file > r._source_file
                    or (w._source_file = r._source_file and w._source_line >= r._source_line)))
    """)
    # Replaced keys are deleted first: an UPDATE of every column is slower and DuckDB's
    # INSERT OR REPLACE cannot change a row twice in one transaction.
    con.execute(f"delete from {table} where {key} in (select {key} from _loaded)")
    column_list = ", ".join(columns)
    con.execute(
        f"""insert into {table} ({column_list}, _source_file, _source_line, _loaded_at)
            select {column_list}, _source_file, _source_line, ? from _loaded""",
        [loaded_at],
    )
    con.execute("create or replace temp table _loaded_counts as "
                "select file_id, count(*) as rows_loaded from _loaded group by file_id")
