"""On the generator's data (crmflow generate), the churn model must beat the "days since last
purchase" baseline: the generator's world has real churn signal (fading engagement before customers
stop buying), and the model has to find it.

The same path as the pipeline: generator landing files -> ingestion -> dbt (only the models the
churn features read) -> churn_step, which records its decision in intelligence_model_runs.
"""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from connectors.sources.files import ingest_source
from crmflow.generator import GeneratorConfig, generate_landing
from crmflow.intelligence.config import FeatureConfig, IntelligenceConfig
from crmflow.intelligence.features import EVENT_STAGE, build_features, staged_inputs
from crmflow.intelligence.steps import churn_step
from crmflow.settings import DBT_PROJECT_DIR
from crmflow.warehouse import connect

pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).parent / "dbt")
AS_OF = datetime(2026, 11, 21, 6, tzinfo=UTC)
USERS = 3000
# The churn features (crmflow/intelligence/features.py) read these marts and their upstream.
# int_intelligence__event_days is their shared event stage.
DBT_SELECT = ["+customer_profile", "+stg_shop__order_items", "+events_stitched", "+int_intelligence__event_days"]


def _build_dbt(warehouse: Path, target: Path) -> None:
    env = {**os.environ, "CRMFLOW_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           "DO_NOT_TRACK": "1"}
    result = subprocess.run(
        # build (not run): the upstream seeds (fx_rates) load too; tests are left to the dbt suites.
        [DBT, "build", "--profiles-dir", str(DBT_PROJECT_DIR), "--project-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(target), "--log-path", str(target / "logs"),
         "--vars", json.dumps({"as_of": AS_OF.isoformat(), "business_timezone": "UTC"}),
         "--select", *DBT_SELECT, "--exclude", "resource_type:test", "resource_type:unit_test"],
        env=env, capture_output=True, text=True, timeout=300, cwd=DBT_PROJECT_DIR,
    )
    assert result.returncode == 0, result.stdout[-6000:]


def test_churn_model_beats_the_baseline_on_generator_data(tmp_path: Path) -> None:
    started = time.monotonic()
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    generate_landing(GeneratorConfig(users=USERS, days=365, end=date(2026, 11, 20), seed=7), landing)
    with connect(warehouse) as con:
        for source in ("events", "registrations", "orders"):
            assert ingest_source(con, source, landing, loaded_at=AS_OF).balanced
    _build_dbt(warehouse, tmp_path / "target")
    with connect(warehouse) as con:
        _assert_dbt_event_stage_gives_the_same_features(con)
        summary, result = churn_step(con, AS_OF, IntelligenceConfig(), tmp_path / "models")
        decision, metrics = con.execute(
            "select decision, metrics from intelligence_model_runs where model_name = 'churn'").fetchall()[0]
    metrics = json.loads(metrics)
    report = (f"decision={decision} model={metrics.get('model')} baseline={metrics.get('baseline')} "
              f"auc_gain_lower_bound={metrics.get('auc_gain_lower_bound')} ({time.monotonic() - started:.0f}s)")
    assert summary.decision == "model" and decision == "model" and result.model_beats_baseline, report
    assert metrics["model"]["roc_auc"] > metrics["baseline"]["roc_auc"], report
    assert metrics["auc_gain_lower_bound"] > 0, report
    assert metrics["model"]["pr_auc"] > metrics["baseline"]["pr_auc"], report


def _assert_dbt_event_stage_gives_the_same_features(con) -> None:
    """The dbt model int_intelligence__event_days (built at AS_OF, 06:00: days span two q parts) is the
    stage the steps read, and gives the features a stage copied in Python gives, at AS_OF and 60 days before."""
    config = FeatureConfig()
    with staged_inputs(con, AS_OF, config) as shared, staged_inputs(con, AS_OF, config, share=False) as copied:
        assert shared.event_days == EVENT_STAGE and copied.event_days != EVENT_STAGE
        for cutoff in (AS_OF, AS_OF - timedelta(days=60)):
            for population in ("all", "active"):
                from_dbt = build_features(con, cutoff, config, population, staged=shared).frame
                assert from_dbt["events_90d"].sum() > 0 and from_dbt["active_days_30d"].sum() > 0
                pd.testing.assert_frame_equal(from_dbt, build_features(con, cutoff, config, population,
                                                                       staged=copied).frame, check_exact=True)
