"""dbt is safe on its own (issue 16): a bare `dbt build` uses the dev target and leaves the
production warehouse alone, the production target refuses the default as-of, and an empty warehouse
gets a message naming what to run first instead of a catalog error."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from crmflow.settings import DBT_PROJECT_DIR

DBT = str(Path(sys.executable).parent / "dbt")


def _dbt(env: dict[str, str], work: Path) -> str:
    result = subprocess.run(
        [DBT, "build", "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(work / "target"), "--log-path", str(work / "logs")],
        env=env, capture_output=True, text=True, timeout=900, cwd=DBT_PROJECT_DIR)
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_bare_dbt_build_is_the_dev_target_and_production_needs_the_as_of(tmp_path):
    production = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(production)).close()
    before = production.read_bytes()
    base = {k: v for k, v in os.environ.items() if k not in ("CRMFLOW_DBT_TARGET", "CRMFLOW_DBT_DEV_WAREHOUSE")}
    base.update(CRMFLOW_WAREHOUSE=str(production), DBT_SEND_ANONYMOUS_USAGE_STATS="false")

    bare = _dbt({**base, "CRMFLOW_DBT_DEV_WAREHOUSE": str(tmp_path / "dev.duckdb")}, tmp_path)
    assert "target='dev'" in bare
    assert "dbt target 'dev' has no " in bare and "main.raw_events" in bare
    assert "crmflow run" in bare and "Catalog Error" not in bare
    assert (tmp_path / "dev.duckdb").exists() and production.read_bytes() == before

    prod = _dbt({**base, "CRMFLOW_DBT_TARGET": "duckdb"}, tmp_path)
    assert "dbt target 'duckdb' is the production warehouse and needs the as-of given explicitly" in prod
    assert production.read_bytes() == before
