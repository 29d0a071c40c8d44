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
# CLI runs are recorded in the Dagster instance (orchestration/runs.py): a temporary one, never
# ./var/dagster_home (which `make` exports for the demo and the UI).
os.environ["DAGSTER_HOME"] = str(_SESSION_DIR / "dagster_home")
(_SESSION_DIR / "dagster_home").mkdir()
# Tests that call dbt themselves build CRMFLOW_WAREHOUSE (the `duckdb` output), as crmflow does; a
# bare dbt command defaults to the `dev` target (profiles.yml).
os.environ.setdefault("CRMFLOW_DBT_TARGET", "duckdb")
# Journey governance: the shipped marketing/roles.yaml requires an approved version before a journey
# sends. The suites written before governance run the shipped journeys with approval not required
# (this roles file says so); tests/test_governance_*.py unset it and use the shipped or their own roles.
os.environ.setdefault("CRMFLOW_ROLES_FILE",
                      str(Path(__file__).resolve().parent / "fixtures" / "governance" / "roles_approval_off.yaml"))
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The dbt manifest the Dagster definitions load (prepared once per session, never at import)."""
    from orchestration.cli import prepare_dbt_manifest

    return prepare_dbt_manifest()
