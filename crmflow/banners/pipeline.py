"""One banner run: assign, diff against the previous run, export on change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from crmflow.banners.assign import AssignmentStats, compute_assignments
from crmflow.banners.config import BannerConfig
from crmflow.banners.publish import changed_records, record_changes, write_export


@dataclass(frozen=True)
class BannerRunResult:
    stats: AssignmentStats
    changes: dict[str, int]
    export_written: bool
    changed: pa.Table  # this run's changed assignments (for the optional push)


def run_banner_assignment(con: duckdb.DuckDBPyConnection, config: BannerConfig, as_of: datetime,
                          tz: ZoneInfo, export_dir: Path) -> BannerRunResult:
    stats = compute_assignments(con, config, as_of, tz, target="_banner_assignments_new")
    changes = record_changes(con, "_banner_assignments_new", as_of)
    written = write_export(con, export_dir, force=sum(changes.values()) > 0)
    return BannerRunResult(stats, changes, written, changed_records(con))
