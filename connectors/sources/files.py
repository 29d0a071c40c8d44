"""Landing-file ingestion (placeholder until the ingestion work lands: reads nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from crmflow.warehouse import ensure_raw_tables


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


def ingest_source(
    con: duckdb.DuckDBPyConnection, source: str, landing_dir: str | Path, loaded_at: datetime
) -> IngestStats:
    ensure_raw_tables(con)
    return IngestStats(source=source)
