"""What the report asset and `crmflow report` share: measure (goals, dbt models, statistics), then write the report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from crmflow.measurement.config import MeasurementConfig
from crmflow.measurement.tables import MeasurementResult, RunModels, measure
from crmflow.report.data import ReportData, load_report_data
from crmflow.report.render import write_report
from crmflow.warehouse import Warehouse, WarehouseTarget, open_warehouse


@dataclass
class ReportOutcome:
    path: Path
    charts: int
    data: ReportData
    seconds: float


def default_report_path(export_dir: Path) -> Path:
    return export_dir / "report.html"


def report_from_warehouse(con: Warehouse | object, out: Path, as_of: datetime) -> ReportOutcome:
    started = time.perf_counter()
    data = load_report_data(con, as_of)
    path, chart_count = write_report(data, out)
    return ReportOutcome(path, chart_count, data, time.perf_counter() - started)


def measure_and_report(target: WarehouseTarget | str | Path, journeys_dir: Path | None, out: Path,
                       as_of: datetime, run_models: RunModels, config: MeasurementConfig | None = None,
                       ) -> tuple[MeasurementResult, ReportOutcome]:
    """Goals, the dbt measurement models (`run_models`), the statistics, then the report."""
    measured = measure(target, journeys_dir, as_of, run_models, config)
    with open_warehouse(target) as wh:
        return measured, report_from_warehouse(wh, out, as_of)
