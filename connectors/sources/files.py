"""Landing-file ingestion: new files of one source -> raw_<source>, bad rows -> quarantine_<source>.

Incremental: a file whose (path, sha256) is in ingested_files is skipped; a changed file is re-read.
New files are loaded in batches (up to BATCH_BYTES of file content per SQL pass) inside one
transaction per batch, so a crash never leaves a half-loaded file recorded as ingested.
Row accounting per call: rows_read = rows_loaded + duplicates_skipped + rows_quarantined.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from connectors.sources.contracts import CONTRACTS
from connectors.sources.landing_reader import (
    LandingFile,
    list_landing_files,
    read_bytes,
    split_csv_records,
    split_lines,
)
from connectors.sources.merge import load_valid_rows
from connectors.sources.reference import load_reference_tables
from connectors.sources.rules import SourceContract, validated_sql
from connectors.sources.sql_parts import csv_fields_sql, jsonl_fields_sql
from crmflow.privacy import anonymise_staged_rows
from crmflow.warehouse import ensure_raw_tables

# File content per SQL pass: big enough to amortise the pass, small enough for 2 cores / few GB.
BATCH_BYTES = 256 * 1024 * 1024


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


def ingest_source(
    con: duckdb.DuckDBPyConnection,
    source: str,
    landing_dir: str | Path,
    loaded_at: datetime,
    batch_bytes: int = BATCH_BYTES,
) -> IngestStats:
    """Load every new or changed landing file of `source` ("events", "registrations", "orders")."""
    if source not in CONTRACTS:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(CONTRACTS)}")
    if loaded_at.tzinfo is None:
        raise ValueError("loaded_at must be timezone-aware")
    contract = CONTRACTS[source]
    ensure_raw_tables(con)
    load_reference_tables(con)
    stats = IngestStats(source=source)
    reasons: Counter[str] = Counter()
    known = set(
        con.execute("select path, content_hash from ingested_files where source = ?", [source]).fetchall()
    )
    batch: list[_PendingFile] = []
    size = 0
    for landing_file in list_landing_files(Path(landing_dir), source, contract.formats):
        data, digest = read_bytes(landing_file.path)
        if (landing_file.rel_path, digest) in known:
            stats.files_skipped += 1
            continue
        batch.append(_PendingFile(landing_file, data, digest))
        size += len(data)
        if size >= batch_bytes:
            _load_batch(con, contract, batch, loaded_at, stats, reasons)
            batch, size = [], 0
    if batch:
        _load_batch(con, contract, batch, loaded_at, stats, reasons)
    stats.quarantine_reasons = dict(sorted(reasons.items()))
    return stats


def _load_batch(
    con: duckdb.DuckDBPyConnection,
    contract: SourceContract,
    batch: list[_PendingFile],
    loaded_at: datetime,
    stats: IngestStats,
    reasons: Counter[str],
) -> None:
    files = pa.table({
        "file_id": pa.array(range(len(batch)), pa.int32()),
        "rel_path": [p.file.rel_path for p in batch],
        "content_hash": [p.content_hash for p in batch],
    })
    jsonl = [split_lines(p.data, i) for i, p in enumerate(batch) if p.file.fmt == "jsonl"]
    csv = [split_csv_records(p.data, i) for i, p in enumerate(batch) if p.file.fmt == "csv"]
    parts = []
    con.register("_batch_files", files)
    if jsonl:
        con.register("_jsonl_lines", pa.concat_tables(jsonl))
        parts.append(jsonl_fields_sql("_jsonl_lines", contract.fields, contract.json_fields))
    if csv:
        con.register("_csv_records", pa.concat_tables(csv))
        parts.append(csv_fields_sql("_csv_records", contract.fields))
    fields_relation = "(" + "\nunion all by name\n".join(f"({p})" for p in parts) + ")"
    source = contract.source
    con.execute("begin transaction")
    try:
        con.execute(f"create or replace temp table _staged as {validated_sql(contract, fields_relation)}")
        con.execute(
            f"""insert into quarantine_{source}
                select f.rel_path, s.line_number, s.raw_content, s.reason, s.field, ?
                from _staged s join _batch_files f using (file_id)
                where s.reason is not null""",
            [loaded_at],
        )
        anonymise_staged_rows(con)  # re-delivered rows of an erased person (crmflow/privacy.py)
        load_valid_rows(con, contract, loaded_at)
        per_file = con.execute(
            f"""insert into ingested_files
                select '{source}', f.rel_path, f.content_hash,
                       coalesce(s.rows_read, 0), coalesce(l.rows_loaded, 0),
                       coalesce(s.rows_read, 0) - coalesce(l.rows_loaded, 0) - coalesce(s.rows_quarantined, 0),
                       coalesce(s.rows_quarantined, 0), ?
                from _batch_files f
                left join (select file_id, count(*) as rows_read, count(reason) as rows_quarantined
                           from _staged group by file_id) s using (file_id)
                left join (select file_id, count(*) as rows_loaded from _loaded group by file_id) l
                       using (file_id)
                returning rows_read, rows_loaded, duplicates_skipped, rows_quarantined""",
            [loaded_at],
        ).fetchall()
        batch_reasons = con.execute(
            "select reason, count(*) from _staged where reason is not null group by reason"
        ).fetchall()
        con.execute("commit")
    except Exception as exc:
        con.execute("rollback")
        names = ", ".join(p.file.rel_path for p in batch[:5]) + (" ..." if len(batch) > 5 else "")
        raise RuntimeError(f"ingesting {source} files failed ({names}): {exc}") from exc
    finally:
        for view in ("_batch_files", "_jsonl_lines", "_csv_records"):
            con.unregister(view)
        con.execute("drop table if exists _staged; drop table if exists _loaded")
    stats.files_ingested += len(batch)
    for read, loaded, duplicates, quarantined in per_file:
        stats.rows_read += read
        stats.rows_loaded += loaded
        stats.duplicates_skipped += duplicates
        stats.rows_quarantined += quarantined
    reasons.update(dict(batch_reasons))
