"""One banner run: assign, diff against the previous run, export on change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa

from crmflow.banners.assign import AssignmentStats, compute_assignments
from crmflow.banners.config import BannerConfig
from crmflow.banners.publish import changed_records, record_changes, write_export
from crmflow.warehouse import Warehouse, as_warehouse


@dataclass(frozen=True)
class BannerRunResult:
    stats: AssignmentStats
    changes: dict[str, int]
    export_written: bool
    changed: pa.Table | None  # this run's changed assignments; None when not asked for (with_changed=False)


def run_banner_assignment(con: Warehouse | object, config: BannerConfig, as_of: datetime,
                          tz: ZoneInfo, export_dir: Path, with_changed: bool = True) -> BannerRunResult:
    """with_changed=False skips materialising this run's changes as Arrow (2M rows on a first run at
    1M users): the asset pushes from banner_assignment_changes (unpushed_records) instead.
    `con` is a Warehouse (DuckDB or PostgreSQL) or a raw DuckDB connection."""
    con = as_warehouse(con)
    stats = compute_assignments(con, config, as_of, tz, target="_banner_assignments_new")
    changes = record_changes(con, "_banner_assignments_new", as_of)
    written = write_export(con, export_dir, force=sum(changes.values()) > 0)
    return BannerRunResult(stats, changes, written, changed_records(con) if with_changed else None)
