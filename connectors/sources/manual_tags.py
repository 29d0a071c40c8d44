"""Manual customer tags: `<landing>/manual_tags/*.csv` (user_id, tag, added_by, added_at) -> raw_manual_tags.

Operators tag customers by dropping CSV files. Each file is loaded once per content hash (recorded in
ingested_files with source 'manual_tags'); bad rows go to quarantine_manual_tags with the file, line,
field and reason, so nothing is dropped silently. A (user_id, tag) pair already tagged keeps its first
added_at; later repeats count as duplicates. Validation is one SQL statement per file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.sources.files import IngestStats
from crmflow.warehouse import ensure_raw_tables, transaction

SOURCE = "manual_tags"
REQUIRED_COLUMNS = ("user_id", "tag", "added_by", "added_at")
TAG_PATTERN = "^[a-z][a-z0-9_]{0,62}$"  # same rule as crmflow.tags.TAG_NAME


@dataclass
class _ParsedFile:
    table: pa.Table | None  # valid-shaped rows with a _line column; None when the header is unusable
    bad_rows: list[tuple[int, str, str, str | None]]  # (line, raw text, reason, field)


def _read_csv(path: Path) -> _ParsedFile:
    bad: list[tuple[int, str, str, str | None]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number or 0, row.text, "wrong_column_count",
                    f"expected {row.expected_columns} columns, got {row.actual_columns}"))
        return "skip"

    with path.open(encoding="utf-8", errors="replace") as handle:
        header = [h.strip().strip('"') for h in handle.readline().strip().split(",")]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return _ParsedFile(None, [(1, ",".join(header), "missing_column", ", ".join(missing))])
    # Invalid UTF-8 would abort the whole read (even inside the invalid-row handler): decode with
    # U+FFFD instead, and quarantine the rows that carry it (reason invalid_utf8).
    source = pa.BufferReader(path.read_bytes().decode("utf-8", errors="replace").encode("utf-8"))
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(use_threads=False),  # serial: invalid rows carry their line number
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in REQUIRED_COLUMNS},
            include_columns=list(REQUIRED_COLUMNS),
            strings_can_be_null=False,
        ),
    )
    # Line numbers of the parsed rows: every data line (2..) except the ones reported invalid. Assumes
    # no quoted multi-line values, which a tag file has no use for.
    total_lines = table.num_rows + len(bad)
    invalid_lines = np.array([b[0] for b in bad], dtype=np.int64)
    lines = np.setdiff1d(np.arange(2, total_lines + 2, dtype=np.int64), invalid_lines)[: table.num_rows]
    table = table.append_column("_line", pa.array(lines, type=pa.int64()))
    return _ParsedFile(table, bad)


_VALIDATE_SQL = f"""
create or replace temp table _manual_tags_checked as
with cleaned as (
    select trim(user_id) as user_id, lower(trim(tag)) as tag, trim(added_by) as added_by,
           trim(added_at) as added_at_text, try_cast(trim(added_at) as timestamptz) as added_at, _line,
           user_id || ',' || tag || ',' || added_by || ',' || added_at as raw_content
    from _manual_tags_batch
    -- a blank line is not a row
    where not (user_id = '' and tag = '' and added_by = '' and added_at = '')
)
select *,
    case
        when contains(raw_content, chr(65533)) then 'invalid_utf8'
        when user_id = '' then 'missing_value'
        when tag = '' then 'missing_value'
        when not regexp_full_match(tag, '{TAG_PATTERN}') then 'invalid_tag'
        when added_by = '' then 'missing_value'
        when added_at is null then 'invalid_timestamp'
        when added_at > $loaded_at then 'added_at_in_future'
    end as reason,
    case
        when user_id = '' then 'user_id'
        when tag = '' or not regexp_full_match(tag, '{TAG_PATTERN}') then 'tag'
        when added_by = '' then 'added_by'
        when added_at is null or added_at > $loaded_at then 'added_at'
    end as field
from cleaned
"""


def ingest_manual_tags(con: duckdb.DuckDBPyConnection, landing_dir: str | Path, loaded_at: datetime) -> IngestStats:
    """Load every new or changed `<landing>/manual_tags/*.csv` file; return what happened."""
    ensure_raw_tables(con)
    stats = IngestStats(source=SOURCE)
    folder = Path(landing_dir) / SOURCE
    files = sorted(folder.glob("*.csv")) if folder.exists() else []
    for path in files:  # a loop per file, not per row
        content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        seen = con.execute(
            "select count(*) from ingested_files where path = ? and content_hash = ?", [str(path), content_hash]
        ).fetchone()[0]
        if seen:
            stats.files_skipped += 1
            continue
        _ingest_file(con, path, content_hash, loaded_at, stats)
        stats.files_ingested += 1
    return stats


def _ingest_file(
    con: duckdb.DuckDBPyConnection, path: Path, content_hash: str, loaded_at: datetime, stats: IngestStats
) -> None:
    parsed = _read_csv(path)
    with transaction(con):
        read = loaded = duplicates = 0
        if parsed.table is not None:
            con.register("_manual_tags_batch", parsed.table)
            con.execute(_VALIDATE_SQL, {"loaded_at": loaded_at})
            con.unregister("_manual_tags_batch")
            read = con.execute("select count(*) from _manual_tags_checked").fetchone()[0]
            con.execute(
                """
                insert into quarantine_manual_tags
                select ?, _line, raw_content, reason, field, ? from _manual_tags_checked where reason is not null
                """,
                [str(path), loaded_at],
            )
            # First added_at wins within the file; pairs already in raw_manual_tags are kept as they are.
            loaded = con.execute(
                """
                insert into raw_manual_tags
                select user_id, tag, added_by, added_at, ?, _line, ?
                from _manual_tags_checked c
                where reason is null
                  and not exists (select 1 from raw_manual_tags r where r.user_id = c.user_id and r.tag = c.tag)
                qualify row_number() over (partition by user_id, tag order by added_at, _line) = 1
                """,
                [str(path), loaded_at],
            ).fetchone()[0]
            valid = con.execute("select count(*) from _manual_tags_checked where reason is null").fetchone()[0]
            duplicates = valid - loaded
            for reason, count in con.execute(
                "select reason, count(*) from _manual_tags_checked where reason is not null group by reason"
            ).fetchall():
                stats.quarantine_reasons[reason] = stats.quarantine_reasons.get(reason, 0) + count
        if parsed.bad_rows:
            con.executemany(
                "insert into quarantine_manual_tags values (?, ?, ?, ?, ?, ?)",
                [(str(path), line, text, reason, fld, loaded_at) for line, text, reason, fld in parsed.bad_rows],
            )
            for reason, count in Counter(b[2] for b in parsed.bad_rows).items():
                stats.quarantine_reasons[reason] = stats.quarantine_reasons.get(reason, 0) + count
        quarantined = read - loaded - duplicates + len(parsed.bad_rows)
        read += len(parsed.bad_rows)
        con.execute(
            "insert into ingested_files (source, path, content_hash, rows_read, rows_loaded, duplicates_skipped,"
            " rows_quarantined, ingested_at) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [SOURCE, str(path), content_hash, read, loaded, duplicates, quarantined, loaded_at],
        )
    stats.rows_read += read
    stats.rows_loaded += loaded
    stats.duplicates_skipped += duplicates
    stats.rows_quarantined += quarantined

