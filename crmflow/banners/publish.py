"""Replace banner_assignments, record what changed, and write the app export only on change.

The diff compares the new assignment with the previous banner_assignments table on everything the
app sees (creative, content, validity); as_of and reason alone do not count as a change.

Each change row carries `pushed_at` (null until the optional HTTP push delivered it). The push sends
the current assignment of every (user, slot) with an unpushed change, so a batch that still failed
after its retries goes out again on the next run, with the content that is current by then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from crmflow.banners.relations import existing_relations
from crmflow.warehouse import transaction

CHANGES_DDL = """
create table if not exists banner_assignment_changes (
    user_id varchar not null,
    slot varchar not null,
    change_type varchar not null,      -- added | changed | removed
    old_creative_id varchar,
    new_creative_id varchar,
    changed_at timestamptz not null,   -- the run's as-of
    pushed_at timestamptz              -- when the HTTP push delivered it; null = not (yet) pushed
);
alter table banner_assignment_changes add column if not exists pushed_at timestamptz;
"""
CHANGE_COLUMNS = "user_id, slot, change_type, old_creative_id, new_creative_id, changed_at"

EXPORT_FILES = ("banner_assignments.parquet", "banner_assignments.jsonl")


@dataclass(frozen=True)
class PublishResult:
    changes: dict[str, int]  # change_type -> rows
    export_written: bool
    export_dir: Path


def record_changes(con: duckdb.DuckDBPyConnection, new_table: str, as_of: datetime) -> dict[str, int]:
    """Append the differences between banner_assignments and `new_table` to
    banner_assignment_changes, then make `new_table` the current banner_assignments."""
    con.execute(CHANGES_DDL)
    old = "banner_assignments" if "banner_assignments" in existing_relations(con) else None
    if old is None:
        con.execute("create temp table if not exists _bn_no_previous as "
                    f"select * from {new_table} where false")
        old = "_bn_no_previous"
    with transaction(con):
        con.execute(f"""
            create or replace temp table _bn_changes as
            select coalesce(n.user_id, o.user_id) as user_id, coalesce(n.slot, o.slot) as slot,
                   case when o.user_id is null then 'added' when n.user_id is null then 'removed'
                        else 'changed' end as change_type,
                   o.creative_id as old_creative_id, n.creative_id as new_creative_id,
                   $as_of::timestamptz as changed_at
            from {new_table} n
            full outer join {old} o on o.user_id = n.user_id and o.slot = n.slot
            where o.user_id is null or n.user_id is null
               or n.creative_id is distinct from o.creative_id
               or n.content_locale is distinct from o.content_locale
               or n.image_url is distinct from o.image_url
               or n.text is distinct from o.text
               or n.deep_link is distinct from o.deep_link
               or n.valid_until is distinct from o.valid_until
        """, {"as_of": as_of})
        con.execute(f"insert into banner_assignment_changes ({CHANGE_COLUMNS}) select * from _bn_changes")
        # Only this diff counts: a rerun at the same as-of must not see the earlier run's changes.
        counts = dict(con.execute("select change_type, count(*) from _bn_changes group by 1 order by 1").fetchall())
        # rename, not copy: the new table becomes banner_assignments without rewriting its rows
        con.execute("drop table if exists banner_assignments")
        con.execute(f"alter table {new_table} rename to banner_assignments")
    return counts


def write_export(con: duckdb.DuckDBPyConnection, export_dir: Path, force: bool) -> bool:
    """Write <export_dir>/banners/banner_assignments.{parquet,jsonl}: Parquet one row per (user, slot)
    sorted by user; JSON Lines one object per user with its slots. Skipped when nothing changed and
    the files exist. Files are written beside and renamed, so the app never reads half a file."""
    folder = Path(export_dir) / "banners"
    if not force and all((folder / name).exists() for name in EXPORT_FILES):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    parquet_tmp = folder / ".banner_assignments.parquet.tmp"
    jsonl_tmp = folder / ".banner_assignments.jsonl.tmp"
    con.execute(f"""copy (select user_id, slot, creative_id, content_locale, image_url, text, deep_link,
                                 valid_until, as_of from banner_assignments order by user_id, slot)
                    to '{parquet_tmp}' (format parquet)""")
    _write_lines(con, _jsonl_sql(con), jsonl_tmp)
    os.replace(parquet_tmp, folder / EXPORT_FILES[0])
    os.replace(jsonl_tmp, folder / EXPORT_FILES[1])
    return True


def _jsonl_sql(con: duckdb.DuckDBPyConnection) -> str:
    """One JSON object per user, as text ending in a newline, in user order.

    The JSON of a slot's content is built once per distinct content (a handful), not per row; the
    per-user grouping carries only that content's number, and each line is plain string
    concatenation. Same bytes as DuckDB's COPY (format json) of json_group_object(slot,
    json_object(...)) with the slots in name order."""
    slots = [row[0] for row in con.execute("select distinct slot from banner_assignments order by 1").fetchall()]
    per_slot = ", ".join(f"any_value(c.content_no) filter (where b.slot = {_sql_text(slot)}) as s{i}"
                         for i, slot in enumerate(slots))
    pieces = ", ".join(f"to_json({_sql_text(slot)}::varchar)::varchar || ':' || contents.j[u.s{i}]"
                       for i, slot in enumerate(slots))
    same_content = " and ".join(f"b.{col} is not distinct from c.{col}" for col in _CONTENT_COLUMNS)
    return f"""
        with c as (
            select *, row_number() over () as content_no,
                   json_object('creative_id', creative_id, 'locale', content_locale, 'image_url', image_url,
                               'text', text, 'deep_link', deep_link, 'valid_until', valid_until)::varchar as j
            from (select distinct {', '.join(_CONTENT_COLUMNS)} from banner_assignments)
        ),
        contents as (select list(j order by content_no) as j from c),
        per_user as (
            select b.user_id, any_value(b.as_of) as as_of{', ' + per_slot if per_slot else ''}
            from banner_assignments b join c on {same_content}
            group by b.user_id
        )
        select '{{"user_id":' || to_json(u.user_id)::varchar || ',"as_of":' || to_json(u.as_of)::varchar
               || ',"slots":{{' || concat_ws(',', {pieces or "null"}) || '}}}}' || chr(10) as line
        from per_user u cross join contents
        order by u.user_id"""


_CONTENT_COLUMNS = ("creative_id", "content_locale", "image_url", "text", "deep_link", "valid_until")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_lines(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> None:
    """Write the one text column of `sql` (each value a whole line) to `path`, streamed as Arrow
    batches whose string data is written as is (DuckDB's CSV/JSON writers cost ~4x more CPU)."""
    reader = con.sql(sql).to_arrow_reader(200_000)
    with open(path, "wb") as out:
        for batch in reader:
            column = batch.column(0)
            if column.null_count:
                raise ValueError(f"banner export: {column.null_count} empty JSON lines")
            if pa.types.is_large_string(column.type):
                offset_type = np.int64
            elif pa.types.is_string(column.type):
                offset_type = np.int32
            else:  # e.g. string_view: no single data buffer to write
                column, offset_type = column.cast(pa.large_string()), np.int64
            offsets = np.frombuffer(column.buffers()[1], dtype=offset_type)[column.offset:column.offset + len(column) + 1]
            data = column.buffers()[2]
            if data is not None and len(offsets):
                out.write(memoryview(data)[int(offsets[0]):int(offsets[-1])])


def changed_records(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The changes of this run (record_changes on this connection) with the new content, for the push."""
    return con.sql("""
        select c.user_id, c.slot, c.change_type, c.new_creative_id as creative_id, a.content_locale,
               a.image_url, a.text, a.deep_link, strftime(a.valid_until, '%Y-%m-%dT%H:%M:%SZ') as valid_until
        from _bn_changes c
        left join banner_assignments a on a.user_id = c.user_id and a.slot = c.slot
        order by c.user_id, c.slot
    """).to_arrow_table()


PUSH_SELECT = """
    select c.user_id, c.slot, c.change_type, c.new_creative_id as creative_id, a.content_locale,
           a.image_url, a.text, a.deep_link, strftime(a.valid_until, '%Y-%m-%dT%H:%M:%SZ') as valid_until
    from (select * from banner_assignment_changes where pushed_at is null
          -- the latest change per pair decides added/changed/removed; content is the current one
          qualify row_number() over (partition by user_id, slot
                                     order by changed_at desc, new_creative_id nulls first) = 1) c
    left join banner_assignments a on a.user_id = c.user_id and a.slot = c.slot
    order by c.user_id, c.slot
"""


def unpushed_records(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every (user, slot) with a change the push has not delivered yet (this run's and earlier
    failed ones), with its current content: the push payload."""
    con.execute(CHANGES_DDL)
    return con.sql(PUSH_SELECT).to_arrow_table()


def mark_pushed(con: duckdb.DuckDBPyConnection, delivered: pa.Table, as_of: datetime) -> int:
    """Stamp pushed_at on every unpushed change of the delivered (user_id, slot) pairs."""
    con.register("_bn_delivered", delivered.select(["user_id", "slot"]))
    try:
        return len(con.execute("""update banner_assignment_changes c set pushed_at = $as_of
            from (select distinct user_id, slot from _bn_delivered) d
            where c.pushed_at is null and c.user_id = d.user_id and c.slot = d.slot returning 1""",
                               {"as_of": as_of}).fetchall())
    finally:
        con.unregister("_bn_delivered")
