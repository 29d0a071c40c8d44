"""Runtime settings, read from environment variables with sane defaults.

Every path is resolved to an absolute path once, so dbt subprocesses and Dagster steps that run in
another working directory see the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crmflow.errors import CrmflowUserError
from crmflow.warehouse.target import WarehouseConfigError, WarehouseTarget, parse_target

_CHECKOUT = Path(__file__).resolve().parent.parent
# A source checkout (or an editable install) has dbt_project.yml beside the packages; an installed
# wheel carries the dbt project and the marketing defaults in crmflow/project/ (setup.py build_py).
REPO_ROOT = _CHECKOUT if (_CHECKOUT / "dbt_project.yml").is_file() else Path(__file__).resolve().parent / "project"
DBT_PROJECT_DIR = REPO_ROOT  # dbt_project.yml lives at the project root and points into dbt_project/
MARKETING_DIR_DEFAULT = REPO_ROOT / "marketing"
# Hostile landing files (connectors/sources/landing_reader.py): a longer line is quarantined as
# too_large unparsed; a CSV quote still open after this many lines is an unclosed_quote.
INGEST_MAX_LINE_BYTES = 1024 * 1024
INGEST_MAX_CSV_FIELD_LINES = 10


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    # Where crmflow's Python reads and writes: CRMFLOW_WAREHOUSE (a DuckDB file, absolute path, or a
    # PostgreSQL server), or with a Spark warehouse the operational store CRMFLOW_STATE; str() never
    # shows a password
    warehouse: WarehouseTarget
    outbox_dir: Path
    timezone: str
    marketing_dir: Path
    export_dir: Path
    ingest_max_line_bytes: int = INGEST_MAX_LINE_BYTES
    ingest_max_csv_field_lines: int = INGEST_MAX_CSV_FIELD_LINES
    # CRMFLOW_WAREHOUSE=spark://...: where dbt builds the models (docs/scaling.md); None otherwise
    spark: WarehouseTarget | None = None

    @property
    def dbt_target(self) -> WarehouseTarget:
        """The warehouse dbt builds on: Spark when there is one, else the warehouse itself."""
        return self.spark or self.warehouse

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def journeys_dir(self) -> Path:
        return self.marketing_dir / "journeys"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    tz = check_timezone(env.get("CRMFLOW_TIMEZONE", "UTC"), "CRMFLOW_TIMEZONE")
    warehouse = parse_target(None, env)
    spark = None
    if warehouse.kind == "spark":
        warehouse, spark = state_target(warehouse, env), warehouse
    elif env.get("CRMFLOW_STATE", "").strip():
        raise CrmflowUserError(f"CRMFLOW_STATE is the store beside a spark:// warehouse, but CRMFLOW_WAREHOUSE="
                               f"{warehouse.redacted()!r} keeps crmflow's state itself: unset CRMFLOW_STATE")
    return Settings(
        landing_dir=Path(env.get("CRMFLOW_LANDING_DIR", "./data/landing")).resolve(),
        warehouse=warehouse,
        spark=spark,
        outbox_dir=Path(env.get("CRMFLOW_OUTBOX_DIR", "./var/outbox")).resolve(),
        timezone=tz,
        marketing_dir=Path(env.get("CRMFLOW_MARKETING_DIR", str(MARKETING_DIR_DEFAULT))).resolve(),
        export_dir=Path(env.get("CRMFLOW_EXPORT_DIR", "./var/exports")).resolve(),
        ingest_max_line_bytes=_positive_int(env, "CRMFLOW_INGEST_MAX_LINE_BYTES", INGEST_MAX_LINE_BYTES),
        ingest_max_csv_field_lines=_positive_int(env, "CRMFLOW_INGEST_MAX_CSV_FIELD_LINES",
                                                 INGEST_MAX_CSV_FIELD_LINES),
    )


def state_target(spark: WarehouseTarget, env: dict[str, str]) -> WarehouseTarget:
    """CRMFLOW_STATE beside a Spark warehouse: a DuckDB file or a postgresql:// URL (required)."""
    value = env.get("CRMFLOW_STATE", "").strip()
    if not value:
        raise CrmflowUserError(
            f"CRMFLOW_WAREHOUSE={spark.redacted()} needs CRMFLOW_STATE, the store of crmflow's operational state "
            "(ledger, enrolments, tasks): a DuckDB file path (e.g. ./var/state.duckdb) or a postgresql:// URL")
    try:
        state = parse_target(value, env)
    except WarehouseConfigError as error:
        raise CrmflowUserError(str(error).replace("CRMFLOW_WAREHOUSE=", "CRMFLOW_STATE=", 1)) from None
    if state.kind == "spark":
        raise CrmflowUserError(f"CRMFLOW_STATE={state.redacted()!r} is Spark, which has no transactions: use a "
                               "DuckDB file path or a postgresql:// URL")
    return state


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise CrmflowUserError(f"{name}={value!r} is not a whole number >= 1 (default {default})")
    return int(value)


def check_timezone(name: str, source: str) -> str:
    """`name` if it is an IANA time zone; else one line naming `source` and the value."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not even a zone-shaped key ("", "../x")
        raise CrmflowUserError(f"{source}={name!r} is not a time zone: use an IANA name like Europe/Berlin "
                               "or UTC") from None
    return name


AS_OF_FORMS = "ISO-8601 like 2026-11-22, 2026-11-22T06:00:00Z or 2026-11-22T07:00:00+01:00 (no zone = UTC)"


def parse_as_of(value: str | None, source: str = "--as-of") -> datetime:
    """Parse an ISO-8601 as-of time; naive values are taken as UTC. None means now (UTC).
    `source` names where the value came from in the error (an option, a run tag)."""
    if value is None or value == "":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CrmflowUserError(f"{source} {value!r} is not a time: use {AS_OF_FORMS}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
