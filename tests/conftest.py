"""Test-wide setup: every test runs against temporary paths, never ./var or ./data."""

import os
import tempfile
from pathlib import Path

import pytest

# Set before any test module imports orchestration.definitions (which reads settings at import).
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="crmflow-tests-"))
os.environ.setdefault("CRMFLOW_WAREHOUSE", str(_SESSION_DIR / "warehouse.duckdb"))
os.environ.setdefault("CRMFLOW_LANDING_DIR", str(_SESSION_DIR / "landing"))
os.environ.setdefault("CRMFLOW_OUTBOX_DIR", str(_SESSION_DIR / "outbox"))
os.environ.setdefault("CRMFLOW_EXPORT_DIR", str(_SESSION_DIR / "exports"))
os.environ.setdefault("CRMFLOW_TIMEZONE", "UTC")
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The dbt manifest the Dagster definitions load (prepared once per session, never at import)."""
    from orchestration.cli import prepare_dbt_manifest

    return prepare_dbt_manifest()
