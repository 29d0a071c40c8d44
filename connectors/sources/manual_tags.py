"""Manual customer tags: `<landing>/manual_tags/*.csv` (user_id, tag, added_by, added_at) -> raw_manual_tags.

Operators tag customers by dropping CSV files. Each file is loaded once per content hash (recorded in
ingested_files with source 'manual_tags'); bad rows go to quarantine_manual_tags with the file, line,
field and reason, so nothing is dropped silently. A (user_id, tag) pair already tagged keeps its first
added_at; later repeats count as duplicates. Validation is one SQL statement per file, in the
landing parser (an in-memory DuckDB, landing_parser.py); the rows reach the warehouse (DuckDB or
PostgreSQL) as Arrow, and new (user_id, tag) pairs are inserted with `insert ... on conflict do nothing`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.sources.files import IngestStats
from connectors.sources.landing_parser import Parser, open_parser, parsed
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

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


def ingest_manual_tags(con: Warehouse | object, landing_dir: str | Path, loaded_at: datetime) -> IngestStats:
    """Load every new or changed `<landing>/manual_tags/*.csv` file; return what happened.

    `con` is a Warehouse (or a raw DuckDB connection, wrapped)."""
    warehouse = as_warehouse(con)
    apply_migrations(warehouse)
    stats = IngestStats(source=SOURCE)
    folder = Path(landing_dir) / SOURCE
    files = sorted(folder.glob("*.csv")) if folder.exists() else []
    with open_parser() as parser:
        for path in files:  # a loop per file, not per row
            content_hash = hashlib.sha256(path.read_bytes()).hexdigest()
            seen = warehouse.scalar(
                "select count(*) from ingested_files where path = $path and content_hash = $hash",
                {"path": str(path), "hash": content_hash},
            )
            if seen:
                stats.files_skipped += 1
                continue
            _ingest_file(warehouse, parser, path, content_hash, loaded_at, stats)
            stats.files_ingested += 1
    return stats


def _ingest_file(
    warehouse: Warehouse, parser: Parser, path: Path, content_hash: str, loaded_at: datetime, stats: IngestStats
) -> None:
    parsed_file = _read_csv(path)
    reasons: Counter[str] = Counter(b[2] for b in parsed_file.bad_rows)
    read = loaded = duplicates = 0
    with warehouse.transaction():
        if parsed_file.table is not None:
            parser.register("_manual_tags_batch", parsed_file.table)
            try:
                parser.execute(_VALIDATE_SQL, {"loaded_at": loaded_at})
            finally:
                parser.unregister("_manual_tags_batch")
            params = {"path": str(path), "loaded_at": loaded_at}
            quarantined = parsed(parser, """
                select $path as source_file, _line as line_number, raw_content, reason, field,
                       $loaded_at::timestamptz as quarantined_at
                from _manual_tags_checked where reason is not null""", params)
            if quarantined.num_rows:
                warehouse.write_arrow(quarantined, "quarantine_manual_tags")
            # First added_at wins within the file; pairs already in raw_manual_tags are kept as they are.
            first_per_pair = parsed(parser, """
                select user_id, tag, added_by, added_at, $path as _source_file, _line as _source_line,
                       $loaded_at::timestamptz as _loaded_at
                from (select *, row_number() over (partition by user_id, tag order by added_at, _line) as copy_no
                      from _manual_tags_checked where reason is null)
                where copy_no = 1""", params)
            loaded = warehouse.insert_new_returning("raw_manual_tags", first_per_pair, ["user_id", "tag"]).num_rows
            valid = parser.execute("select count(*) from _manual_tags_checked where reason is null").fetchall()[0][0]
            read = quarantined.num_rows + valid
            duplicates = valid - loaded
            reasons.update(quarantined.column("reason").to_pylist())
        if parsed_file.bad_rows:
            warehouse.write_arrow(_bad_rows_table(str(path), parsed_file.bad_rows, loaded_at), "quarantine_manual_tags")
        quarantined_count = read - loaded - duplicates + len(parsed_file.bad_rows)
        read += len(parsed_file.bad_rows)
        warehouse.execute(
            "insert into ingested_files (source, path, content_hash, rows_read, rows_loaded, duplicates_skipped,"
            " rows_quarantined, ingested_at) values ($source, $path, $hash, $read, $loaded, $duplicates,"
            " $quarantined, $at)",
            {"source": SOURCE, "path": str(path), "hash": content_hash, "read": read, "loaded": loaded,
             "duplicates": duplicates, "quarantined": quarantined_count, "at": loaded_at},
        )
    for reason, count in reasons.items():
        stats.quarantine_reasons[reason] = stats.quarantine_reasons.get(reason, 0) + count
    stats.rows_read += read
    stats.rows_loaded += loaded
    stats.duplicates_skipped += duplicates
    stats.rows_quarantined += quarantined_count


def _bad_rows_table(path: str, bad_rows: list[tuple[int, str, str, str | None]], loaded_at: datetime) -> pa.Table:
    """The rows pyarrow's reader rejected (wrong column count, missing header column) as quarantine rows."""
    lines, texts, reasons, fields = (list(c) for c in zip(*bad_rows, strict=True))
    return pa.table({
        "source_file": [path] * len(bad_rows),
        "line_number": pa.array(lines, pa.int64()),
        "raw_content": pa.array(texts, pa.string()),
        "reason": pa.array(reasons, pa.string()),
        "field": pa.array(fields, pa.string()),
        "quarantined_at": pa.array([loaded_at] * len(bad_rows), pa.timestamp("us", tz="UTC")),
    })
