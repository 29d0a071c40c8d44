"""Dedupe valid staged rows against the batch and the raw table, then write them (set-based).

- events (no version column): first copy of a message_id wins, in (file path, line) order; a copy
  already in raw_events, or a later copy in the batch, is a duplicate.
- registrations / orders (version = updated_at): the newest version per key wins; ties go to the
  later file (path order), then the later line. Against the stored row: an older version, or the
  same updated_at with identical content, is a duplicate; a newer one replaces the stored row.

Leaves temp table `_loaded` (file_id + raw columns) holding exactly the rows written.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from connectors.sources.rules import SourceContract


def load_valid_rows(con: duckdb.DuckDBPyConnection, contract: SourceContract, loaded_at: datetime) -> None:
    key = contract.key
    columns = [name for name, _ in contract.outputs]
    table = f"raw_{contract.source}"
    valid = f"""
        select s.file_id, {', '.join('s.' + c for c in columns)},
               f.rel_path as _source_file, s.line_number as _source_line
        from _staged s join _batch_files f using (file_id)
        where s.reason is null
    """
    if contract.version is None:
        # The stored copies that can match lie in [min, max] of this pass's keys: the constant range
        # lets DuckDB skip row groups by their min/max (zonemaps) instead of probing all history
        # (message ids carry their time, so a month's pass touches about a month of raw_events).
        low, high = con.execute(f"select min({key}), max({key}) from _staged where reason is null").fetchone()
        con.execute(f"""
            create or replace temp table _loaded as
            select * from ({valid}) v
            where not exists (select 1 from {table} r where r.{key} = v.{key} and r.{key} between $low and $high)
            qualify row_number() over (partition by v.{key} order by v.file_id, v._source_line) = 1
        """, {"low": low, "high": high})
    else:
        version = contract.version
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
