"""Replace banner_assignments, record what changed, and write the app export only on change.

The diff compares the new assignment with the previous banner_assignments table on everything the
app sees (creative, content, validity); as_of and reason alone do not count as a change.

Each change row carries `pushed_at` (null until the optional HTTP push delivered it). The push sends
the current assignment of every (user, slot) with an unpushed change, so a batch that still failed
after its retries goes out again on the next run, with the content that is current by then.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crmflow.banners.relations import existing_relations, replace_temp_table
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse
from crmflow.warehouse.dialect import utc_iso_text

CHANGE_COLUMNS = "user_id, slot, change_type, old_creative_id, new_creative_id, changed_at"

EXPORT_FILES = ("banner_assignments.parquet", "banner_assignments.jsonl")
EXPORT_COLUMNS = ("user_id", "slot", "creative_id", "content_locale", "image_url", "text", "deep_link",
                  "valid_until", "as_of")


def record_changes(con: Warehouse | object, new_table: str, as_of: datetime) -> dict[str, int]:
    """Append the differences between banner_assignments and `new_table` to
    banner_assignment_changes, then make `new_table` the current banner_assignments."""
    wh = as_warehouse(con)
    apply_migrations(wh)
    old = "banner_assignments" if "banner_assignments" in existing_relations(wh) else None
    if old is None:
        replace_temp_table(wh, "_bn_no_previous", f"select * from {new_table} where false")
        old = "_bn_no_previous"
    with wh.transaction():
        replace_temp_table(wh, "_bn_changes", f"""
            select coalesce(n.user_id, o.user_id) as user_id, coalesce(n.slot, o.slot) as slot,
                   cast(case when o.user_id is null then 'added' when n.user_id is null then 'removed'
                             else 'changed' end as varchar) as change_type,
                   o.creative_id as old_creative_id, n.creative_id as new_creative_id,
                   cast($as_of as timestamptz) as changed_at
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
        wh.execute(f"insert into banner_assignment_changes ({CHANGE_COLUMNS}) select {CHANGE_COLUMNS} from _bn_changes")
        # Only this diff counts: a rerun at the same as-of must not see the earlier run's changes.
        counts = dict(wh.fetch_rows("select change_type, count(*) from _bn_changes group by change_type"))
        # rename, not copy: the new table becomes banner_assignments without rewriting its rows
        wh.execute("drop table if exists banner_assignments")
        wh.execute(f"alter table {new_table} rename to banner_assignments")
    return dict(sorted(counts.items()))


def write_export(con: Warehouse | object, export_dir: Path, force: bool) -> bool:
    """Write <export_dir>/banners/banner_assignments.{parquet,jsonl}: Parquet one row per (user, slot)
    sorted by user; JSON Lines one object per user with its slots. Skipped when nothing changed and
    the files exist. Files are written beside and renamed, so the app never reads half a file.

    Rows are sorted in Arrow (code-point order, whatever the database collation), so both engines
    write the same files."""
    wh = as_warehouse(con)
    folder = Path(export_dir) / "banners"
    if not force and all((folder / name).exists() for name in EXPORT_FILES):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    parquet_tmp = folder / ".banner_assignments.parquet.tmp"
    jsonl_tmp = folder / ".banner_assignments.jsonl.tmp"
    rows = wh.fetch_arrow(f"""
        select {", ".join(EXPORT_COLUMNS)},
               -- the same content (a handful per run) gets one number: its JSON is built once
               dense_rank() over (order by {", ".join(_CONTENT_COLUMNS)}) as content_no
        from banner_assignments""")
    rows = rows.sort_by([("user_id", "ascending"), ("slot", "ascending")])
    pq.write_table(rows.select(list(EXPORT_COLUMNS)), parquet_tmp)
    with open(jsonl_tmp, "wb") as out:
        lines = _jsonl_lines(rows)
        if len(lines):
            out.write(_string_data(lines))
    os.replace(parquet_tmp, folder / EXPORT_FILES[0])
    os.replace(jsonl_tmp, folder / EXPORT_FILES[1])
    return True


_CONTENT_COLUMNS = ("creative_id", "content_locale", "image_url", "text", "deep_link", "valid_until")
# The keys of a slot's JSON object, in order, and the column each comes from.
_CONTENT_KEYS = (("creative_id", "creative_id"), ("locale", "content_locale"), ("image_url", "image_url"),
                 ("text", "text"), ("deep_link", "deep_link"), ("valid_until", "valid_until"))
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t"}


def _json_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each value as a JSON literal, the way DuckDB's to_json writes it: strings quoted with \\, ",
    \\b \\f \\n \\r \\t and \\u00xx escapes (nothing else: UTF-8 stays as is), timestamps as
    "YYYY-MM-DD HH:MM:SS[.ffffff]+00" in UTC, null as null. Vectorised over the whole column."""
    values = pa.chunked_array([values]) if isinstance(values, pa.Array) else values
    values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        text = _timestamp_text(values)
    else:
        text = values.cast(pa.string())
        if pc.any(pc.match_substring_regex(text, r"[\x00-\x1f\"\\\\]")).as_py():
            for char, escaped in _SHORT_ESCAPES.items():  # backslash first, so no escape is doubled
                text = pc.replace_substring(text, char, escaped)
            for code in range(0x20):
                if chr(code) not in _SHORT_ESCAPES:
                    text = pc.replace_substring(text, chr(code), f"\\u{code:04x}")
    quoted = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(quoted, "null")


def _timestamp_text(values: pa.Array) -> pa.Array:
    """DuckDB's text of a timestamptz in a UTC session: fractional seconds only when not zero."""
    utc = values.cast(pa.timestamp("us", tz="UTC"))
    seconds = pc.strftime(utc.cast(pa.timestamp("s", tz="UTC"), safe=False), format="%Y-%m-%d %H:%M:%S")
    micros = pc.add(pc.multiply(pc.millisecond(utc), 1000), pc.microsecond(utc))
    fraction = pc.utf8_rtrim(pc.utf8_lpad(micros.cast(pa.string()), 6, "0"), "0")
    fraction = pc.if_else(pc.equal(micros, 0), "", pc.binary_join_element_wise(".", fraction, ""))
    return pc.binary_join_element_wise(seconds, fraction, "+00", "")


def _jsonl_lines(rows: pa.Table) -> pa.Array:
    """One JSON object per user (rows sorted by user_id, slot), each line ending in a newline.

    Same bytes as DuckDB's COPY (format json) of json_group_object(slot, json_object(...)) with the
    slots in name order: the per-content JSON is built once per distinct content, each line is
    plain string concatenation of Arrow columns (no Python per user)."""
    n = rows.num_rows
    if n == 0:
        return pa.array([], pa.string())
    content_no = rows.column("content_no").to_numpy()
    numbers, first = np.unique(content_no, return_index=True)
    contents = rows.take(pa.array(first))
    pieces = []
    for i, (key, column) in enumerate(_CONTENT_KEYS):
        pieces += [("{" if i == 0 else ",") + f'"{key}":', _json_text(contents.column(column))]
    content_json = pc.binary_join_element_wise(*pieces, "}", "")
    # content_no is a dense rank 1..K, so content k's JSON is at position k - 1
    position = np.searchsorted(numbers, content_no)
    slot_pieces = pc.binary_join_element_wise(_json_text(rows.column("slot")), ":",
                                              content_json.take(pa.array(position)), "")
    user = rows.column("user_id").combine_chunks()
    starts = np.concatenate([[0], np.flatnonzero(pc.not_equal(user[1:], user[:-1]).to_numpy(
        zero_copy_only=False)) + 1])
    per_user = pa.ListArray.from_arrays(pa.array(np.append(starts, n), pa.int32()), slot_pieces)
    first_rows = rows.take(pa.array(starts))
    return pc.binary_join_element_wise(
        '{"user_id":', _json_text(first_rows.column("user_id")), ',"as_of":', _json_text(first_rows.column("as_of")),
        ',"slots":{', pc.binary_join(per_user, ","), "}}\n", "")


def _string_data(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array (each value is a whole line), without a copy per value."""
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]):int(offsets[-1])]


def _push_select(dialect: str, changes: str) -> str:
    """The push payload: each (user, slot) of `changes` with its current content, ISO UTC times."""
    return f"""
        select c.user_id, c.slot, c.change_type, c.new_creative_id as creative_id, a.content_locale,
               a.image_url, a.text, a.deep_link, {utc_iso_text("a.valid_until", dialect)} as valid_until
        from {changes} c
        left join banner_assignments a on a.user_id = c.user_id and a.slot = c.slot"""


def _by_user_and_slot(table: pa.Table) -> pa.Table:
    return table.sort_by([("user_id", "ascending"), ("slot", "ascending")])


def changed_records(con: Warehouse | object) -> pa.Table:
    """The changes of this run (record_changes on this connection) with the new content, for the push."""
    wh = as_warehouse(con)
    return _by_user_and_slot(wh.fetch_arrow(_push_select(wh.dialect, "_bn_changes")))


# The latest unpushed change per pair decides added/changed/removed; content is the current one.
LATEST_UNPUSHED = """(
    select * from (
        select ch.*, row_number() over (partition by user_id, slot
                                        order by changed_at desc, new_creative_id nulls first) as pick
        from banner_assignment_changes ch where pushed_at is null
    ) as ranked where pick = 1)"""


def unpushed_records(con: Warehouse | object) -> pa.Table:
    """Every (user, slot) with a change the push has not delivered yet (this run's and earlier
    failed ones), with its current content: the push payload."""
    wh = as_warehouse(con)
    apply_migrations(wh)
    return _by_user_and_slot(wh.fetch_arrow(_push_select(wh.dialect, LATEST_UNPUSHED)))


def mark_pushed(con: Warehouse | object, delivered: pa.Table, as_of: datetime) -> int:
    """Stamp pushed_at on every unpushed change of the delivered (user_id, slot) pairs."""
    wh = as_warehouse(con)
    wh.create_temp_table("_bn_delivered", delivered.select(["user_id", "slot"]))
    try:
        return len(wh.fetch_rows("""update banner_assignment_changes set pushed_at = $as_of
            from (select distinct user_id, slot from _bn_delivered) d
            where banner_assignment_changes.pushed_at is null
              and banner_assignment_changes.user_id = d.user_id and banner_assignment_changes.slot = d.slot
            returning 1""", {"as_of": as_of}))
    finally:
        wh.drop_table("_bn_delivered")
