"""Landing-file ingestion: new files of one source -> raw_<source>, bad rows -> quarantine_<source>.

Incremental: a file whose path, size and mtime (ns) match a row of ingested_files is skipped without
being read; any other file is read and hashed, and skipped when its (path, sha256) is known (then its
size and mtime are recorded, so the next run skips it by stat). A changed file is re-read. Accepted
limitation: a file rewritten in place with the same size and the same mtime is not noticed.
New files are loaded in batches (up to BATCH_BYTES of file content per SQL pass) inside one
transaction per batch, so a crash never leaves a half-loaded file recorded as ingested.
Row accounting per call: rows_read = rows_loaded + duplicates_skipped + rows_quarantined.
A file that makes the parser raise (say DuckDB runs out of memory on it) is quarantined whole as one
`unreadable_file` row holding the error, and recorded, so it cannot fail every later run; the other
files of its batch are loaded one by one.

Any warehouse (DuckDB or PostgreSQL): the lines are parsed and validated in an in-memory DuckDB
(landing_parser.py); quarantine rows, loaded rows and ingested_files rows reach the warehouse as
Arrow through the warehouse interface, and the dedupe against stored rows runs on the warehouse
(merge.py), all inside the batch's warehouse transaction. On a DuckDB warehouse the parser is the
warehouse's own connection (temp tables; landing_parser.shares_connection): the loaded rows go from
the staged table to the raw table by `insert ... select`, never through Python as Arrow.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from connectors.sources.contracts import CONTRACTS
from connectors.sources.landing_parser import ParseFailed as _ParseFailed
from connectors.sources.landing_parser import Parser, create_staged, mirror, open_parser, parsed, settle
from connectors.sources.landing_reader import (
    DEFAULT_LIMITS,
    LandingFile,
    ReadLimits,
    list_landing_files,
    read_bytes,
    split_csv_records,
    split_lines,
)
from connectors.sources.merge import load_valid_rows
from connectors.sources.rules import SourceContract, validated_sql
from connectors.sources.sql_parts import csv_fields_sql, jsonl_fields_sql
from connectors.sources.time_range import DEFAULT_ACCEPTED_TIMES, AcceptedTimes
from crmflow.privacy import anonymise_staged_rows
from crmflow.settings import load_settings
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse

# File content per SQL pass: big enough to amortise the pass, small enough for 2 cores / few GB.
BATCH_BYTES = 256 * 1024 * 1024
# Parser (in-memory DuckDB) memory while ingesting (it spills to disk above this). Without it, loading a year of events
# at 1M users peaked at 5.7 GB RSS; with 300MB at 100k users the load still passed, ~25 % slower.
# 1536MB -> 1024MB: loading the 1.2 GB October events file at 1M users alone peaked at 2,840 -> 2,460 MiB
# RSS for the same CPU (28.5 / 28.9 s); the whole 1M ingest had peaked at 3,901 MiB.
MEMORY_LIMIT = os.environ.get("CRMFLOW_INGEST_MEMORY_LIMIT", "1024MB")
UNREADABLE_FILE = "unreadable_file"
# Characters of the parser's error kept in an unreadable_file quarantine row.
ERROR_CHARS = 1000


@dataclass
class IngestStats:
    source: str
    files_ingested: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    duplicates_skipped: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.duplicates_skipped + self.rows_quarantined


@dataclass(frozen=True)
class _PendingFile:
    file: LandingFile
    data: bytes
    content_hash: str
    file_size: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class _Run:
    """What every batch of one ingest_source call shares; stats and reasons accumulate over batches."""

    warehouse: Warehouse
    parser: Parser
    contract: SourceContract
    loaded_at: datetime
    batch_bytes: int
    limits: ReadLimits
    stats: IngestStats
    reasons: Counter[str]
    erasures: bool  # privacy_erasures has rows (mirrored into the parser)


def default_read_limits() -> ReadLimits:
    settings = load_settings()
    return ReadLimits(settings.ingest_max_line_bytes, settings.ingest_max_csv_field_lines)


def ingest_source(
    con: Warehouse | object,
    source: str,
    landing_dir: str | Path,
    loaded_at: datetime,
    batch_bytes: int = BATCH_BYTES,
    accepted: AcceptedTimes = DEFAULT_ACCEPTED_TIMES,
    limits: ReadLimits | None = None,
) -> IngestStats:
    """Load every new or changed landing file of `source` ("events", "registrations", "orders").

    `con` is a Warehouse (or a raw DuckDB connection, wrapped). `loaded_at` is the run's as-of:
    events later than it (plus `accepted.event_skew`) are quarantined. `limits` (default: the
    CRMFLOW_INGEST_MAX_* settings) bound a line's size and a quoted CSV field.
    """
    if source not in CONTRACTS:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(CONTRACTS)}")
    if loaded_at.tzinfo is None:
        raise ValueError("loaded_at must be timezone-aware")
    warehouse = as_warehouse(con)
    contract = CONTRACTS[source]
    limits = limits or default_read_limits()
    apply_migrations(warehouse)
    with open_parser(accepted, loaded_at, MEMORY_LIMIT, warehouse=warehouse) as parser:
        # Re-delivered rows of an erased person are scrubbed in the parser (crmflow/privacy.py).
        erasures = mirror(warehouse, parser, "privacy_erasures")
        run = _Run(warehouse, parser, contract, loaded_at, batch_bytes, limits, IngestStats(source=source),
                   Counter(), erasures)
        return _ingest(run, Path(landing_dir))


def _ingest(run: _Run, landing_dir: Path) -> IngestStats:
    warehouse, source, stats = run.warehouse, run.contract.source, run.stats
    recorded = warehouse.fetch_rows(
        "select path, content_hash, file_size, mtime_ns from ingested_files where source = $source",
        {"source": source},
    )
    known = {(path, digest) for path, digest, _, _ in recorded}
    unchanged = {(path, file_size, mtime_ns) for path, _, file_size, mtime_ns in recorded}
    batch: list[_PendingFile] = []
    size = 0
    for landing_file in list_landing_files(landing_dir, source, run.contract.formats):
        st = landing_file.path.stat()
        if (landing_file.rel_path, st.st_size, st.st_mtime_ns) in unchanged:
            stats.files_skipped += 1
            continue
        data, digest = read_bytes(landing_file.path)
        if (landing_file.rel_path, digest) in known:
            # same content, new stat (touched, copied, or recorded before size/mtime were kept)
            warehouse.execute(
                "update ingested_files set file_size = $size, mtime_ns = $mtime"
                " where path = $path and content_hash = $digest",
                {"size": st.st_size, "mtime": st.st_mtime_ns, "path": landing_file.rel_path, "digest": digest},
            )
            stats.files_skipped += 1
            continue
        batch.append(_PendingFile(landing_file, data, digest, st.st_size, st.st_mtime_ns))
        size += len(data)
        if size >= run.batch_bytes:
            _load_batch(run, batch)
            batch, size = [], 0
    if batch:
        _load_batch(run, batch)
    if stats.files_ingested:  # PostgreSQL: statistics for the planner of every later read (no-op on DuckDB)
        warehouse.analyze(f"raw_{source}", f"quarantine_{source}", "ingested_files")
    stats.quarantine_reasons = dict(sorted(run.reasons.items()))
    return stats


def _load_batch(run: _Run, batch: list[_PendingFile]) -> None:
    """Load the batch; when its content breaks the parser, load its files one by one, and a single
    file that still breaks it is quarantined whole (one row with the error) and recorded."""
    try:
        _load_files(run, batch)
    except _ParseFailed as failure:
        if len(batch) > 1:
            for pending in batch:
                _load_batch(run, [pending])
        else:
            _quarantine_whole_file(run, batch[0], failure.__cause__)
            run.stats.files_ingested += 1
            run.stats.rows_read += 1
            run.stats.rows_quarantined += 1
            run.reasons[UNREADABLE_FILE] += 1


def _quarantine_whole_file(run: _Run, pending: _PendingFile, error: BaseException | None) -> None:
    """One quarantine row for the file (line 0, raw_content = the error) and its ingested_files
    row (one row read, quarantined), in one transaction."""
    lines = str(error).strip().splitlines() or [""]
    message = f"{type(error).__name__}: {lines[0]}"[:ERROR_CHARS]
    path, at = pending.file.rel_path, pa.array([run.loaded_at], pa.timestamp("us", tz="UTC"))
    quarantine_row = pa.table({
        "source_file": [path], "line_number": pa.array([0], pa.int64()), "raw_content": [message],
        "reason": [UNREADABLE_FILE], "field": pa.array([None], pa.string()), "quarantined_at": at,
    })
    with run.warehouse.transaction():
        run.warehouse.write_arrow(quarantine_row, f"quarantine_{run.contract.source}")
        run.warehouse.write_arrow(_ingested_files_rows(run, [pending], [(1, 0, 0, 1)]), "ingested_files")


def _ingested_files_rows(run: _Run, batch: list[_PendingFile],
                         counts: list[tuple[int, int, int, int]]) -> pa.Table:
    """ingested_files rows: one per file with its (read, loaded, duplicates, quarantined) counts."""
    read, loaded, duplicates, quarantined = (list(c) for c in zip(*counts, strict=True))
    n = len(batch)
    return pa.table({
        "source": [run.contract.source] * n,
        "path": [p.file.rel_path for p in batch],
        "content_hash": [p.content_hash for p in batch],
        "rows_read": pa.array(read, pa.int64()),
        "rows_loaded": pa.array(loaded, pa.int64()),
        "duplicates_skipped": pa.array(duplicates, pa.int64()),
        "rows_quarantined": pa.array(quarantined, pa.int64()),
        "ingested_at": pa.array([run.loaded_at] * n, pa.timestamp("us", tz="UTC")),
        "file_size": pa.array([p.file_size for p in batch], pa.int64()),
        "mtime_ns": pa.array([p.mtime_ns for p in batch], pa.int64()),
    })


def _load_files(run: _Run, batch: list[_PendingFile]) -> None:
    """One warehouse transaction for the batch; inside it, one SQL pass per ~batch_bytes of lines.

    A JSONL file bigger than batch_bytes (a month of events at 1M users is ~700 MB) is staged in
    several passes, so the parser's working set stays bounded; each pass dedupes against the rows
    the earlier passes wrote in this transaction, which gives the same rows as a single pass.
    """
    parser, source = run.parser, run.contract.source
    files = pa.table({
        "file_id": pa.array(range(len(batch)), pa.int32()),
        "rel_path": [p.file.rel_path for p in batch],
    })
    parser.register("_batch_files", files)
    parser.execute("""create or replace temp table _pass_counts (
                          file_id integer, rows_read bigint, rows_quarantined bigint, rows_loaded bigint);
                      create or replace temp table _pass_reasons (reason varchar, n bigint)""")
    try:
        with run.warehouse.transaction():
            for jsonl, csv in _passes(batch, run.batch_bytes, run.limits):
                _stage_pass(run, jsonl, csv)
            per_file = parser.execute(
                """select coalesce(c.rows_read, 0), coalesce(c.rows_loaded, 0),
                          coalesce(c.rows_read, 0) - coalesce(c.rows_loaded, 0) - coalesce(c.rows_quarantined, 0),
                          coalesce(c.rows_quarantined, 0)
                   from _batch_files f
                   left join (select file_id, sum(rows_read) as rows_read,
                                     sum(rows_quarantined) as rows_quarantined, sum(rows_loaded) as rows_loaded
                              from _pass_counts group by file_id) c using (file_id)
                   order by f.file_id"""
            ).fetchall()
            run.warehouse.write_arrow(_ingested_files_rows(run, batch, per_file), "ingested_files")
        batch_reasons = parser.execute("select reason, sum(n)::bigint from _pass_reasons group by reason").fetchall()
    except _ParseFailed:
        raise
    except Exception as exc:
        names = ", ".join(p.file.rel_path for p in batch[:5]) + (" ..." if len(batch) > 5 else "")
        raise RuntimeError(f"ingesting {source} files failed ({names}): {exc}") from exc
    finally:
        for view in ("_batch_files", "_jsonl_lines", "_csv_records"):
            parser.unregister(view)
        parser.execute("drop table if exists _staged; drop table if exists _copies; drop table if exists _duplicates; "
                       "drop table if exists _loaded_counts; drop table if exists _pass_counts; "
                       "drop table if exists _pass_reasons")
    run.stats.files_ingested += len(batch)
    for read, loaded, duplicates, quarantined in per_file:
        run.stats.rows_read += read
        run.stats.rows_loaded += loaded
        run.stats.duplicates_skipped += duplicates
        run.stats.rows_quarantined += quarantined
    run.reasons.update(dict(batch_reasons))


def _passes(batch: list[_PendingFile], batch_bytes: int,
            limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[tuple[list[pa.Table], list[pa.Table]]]:
    """(jsonl line tables, csv record tables) per SQL pass: the whole batch in one pass, except that a
    JSONL file over batch_bytes gets passes of its own, one per zero-copy row slice of about
    batch_bytes. (A CSV file is never cut: its first record is the header of all the others.)"""
    jsonl: list[pa.Table] = []
    csv: list[pa.Table] = []
    for i, pending in enumerate(batch):
        try:
            if pending.file.fmt == "csv":
                csv.append(split_csv_records(pending.data, i, limits))
                continue
            lines = split_lines(pending.data, i, limits)
        except (pa.ArrowException, ValueError, MemoryError) as exc:
            raise _ParseFailed() from exc
        if len(pending.data) <= batch_bytes or lines.num_rows < 2:
            jsonl.append(lines)
            continue
        if jsonl or csv:
            yield jsonl, csv
            jsonl, csv = [], []
        pieces = -(-len(pending.data) // batch_bytes)
        step = -(-lines.num_rows // pieces)
        for offset in range(0, lines.num_rows, step):
            yield [lines.slice(offset, step)], []
    if jsonl or csv:
        yield jsonl, csv


def _stage_pass(run: _Run, jsonl: list[pa.Table], csv: list[pa.Table]) -> None:
    """Validate one pass of lines in the parser, write the bad rows to quarantine and the good ones
    to the raw table (through the warehouse), count per file."""
    parser, contract = run.parser, run.contract
    parts = []
    if jsonl:
        parser.register("_jsonl_lines", pa.concat_tables(jsonl))
        parts.append(jsonl_fields_sql("_jsonl_lines", contract.fields, contract.json_fields, contract.id_fields))
    if csv:
        parser.register("_csv_records", pa.concat_tables(csv))
        parts.append(csv_fields_sql("_csv_records", contract.fields))
    fields_relation = "(" + "\nunion all by name\n".join(f"({p})" for p in parts) + ")"
    create_staged(parser, "_staged", validated_sql(contract, fields_relation))
    for view in ("_jsonl_lines", "_csv_records"):
        parser.unregister(view)
    quarantined = parsed(
        parser,
        """select f.rel_path as source_file, s.line_number, s.raw_content, s.reason, s.field,
                  $loaded_at::timestamptz as quarantined_at
           from _staged s join _batch_files f using (file_id)
           where s.reason is not null""",
        {"loaded_at": run.loaded_at},
    )
    if quarantined.num_rows:
        run.warehouse.write_arrow(quarantined, f"quarantine_{contract.source}")
    if run.erasures:
        anonymise_staged_rows(parser)  # re-delivered rows of an erased person (crmflow/privacy.py)
        settle(parser)
    load_valid_rows(run.warehouse, parser, contract, run.loaded_at)
    parser.execute("""insert into _pass_counts
                      select file_id, count(*), count(reason), 0 from _staged group by file_id
                      union all
                      select file_id, 0, 0, rows_loaded from _loaded_counts""")
    parser.execute("insert into _pass_reasons select reason, count(*) from _staged where reason is not null group by reason")
