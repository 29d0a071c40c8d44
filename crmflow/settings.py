"""Runtime settings, read from environment variables with sane defaults.

Every path is resolved to an absolute path once, so dbt subprocesses and Dagster steps that run in
another working directory see the same files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = REPO_ROOT  # dbt_project.yml lives at the repo root and points into dbt_project/
MARKETING_DIR_DEFAULT = REPO_ROOT / "marketing"


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse: Path
    outbox_dir: Path
    timezone: str
    marketing_dir: Path
    export_dir: Path

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def journeys_dir(self) -> Path:
        return self.marketing_dir / "journeys"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    tz = env.get("CRMFLOW_TIMEZONE", "UTC")
    ZoneInfo(tz)  # fail fast with a clear error on an unknown zone
    return Settings(
        landing_dir=Path(env.get("CRMFLOW_LANDING_DIR", "./data/landing")).resolve(),
        warehouse=Path(env.get("CRMFLOW_WAREHOUSE", "./var/warehouse.duckdb")).resolve(),
        outbox_dir=Path(env.get("CRMFLOW_OUTBOX_DIR", "./var/outbox")).resolve(),
        timezone=tz,
        marketing_dir=Path(env.get("CRMFLOW_MARKETING_DIR", str(MARKETING_DIR_DEFAULT))).resolve(),
        export_dir=Path(env.get("CRMFLOW_EXPORT_DIR", "./var/exports")).resolve(),
    )


def parse_as_of(value: str | None) -> datetime:
    """Parse an ISO-8601 as-of time; naive values are taken as UTC. None means now (UTC)."""
    if value is None or value == "":
        return datetime.now(UTC).replace(microsecond=0)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
