"""End to end: generate sample data and run the whole graph once through the CLI on a temp warehouse.

Reruns, consecutive days, every journey firing and the no-duplicate-send guarantee across days are
covered by tests/test_integration_multiday.py; this module checks one plain run from the CLI.

Runs `crmflow` as a subprocess with its own environment, exactly as a scheduled run or `make demo`
would, so the settings, the dbt manifest, the Definitions object and every stage are exercised.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

CRMFLOW = str(Path(sys.executable).parent / "crmflow")
AS_OF = "2026-11-21T06:00:00+00:00"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([CRMFLOW, *args], env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"crmflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "CRMFLOW_WAREHOUSE": str(root / "warehouse.duckdb"),
        "CRMFLOW_LANDING_DIR": str(root / "landing"),
        "CRMFLOW_OUTBOX_DIR": str(root / "outbox"),
        "CRMFLOW_EXPORT_DIR": str(root / "exports"),
        "CRMFLOW_TIMEZONE": "Asia/Shanghai",
    }
    _run(env, "generate", "--users", "300", "--days", "365", "--end", "2026-11-20", "--seed", "11")
    first = _run(env, "run", "--as-of", AS_OF)
    return root, env, first


def _query(root: Path, sql: str):
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_every_stage_produces_rows(pipeline):
    root, _env, first = pipeline
    assert first.returncode == 0 and re.search(r"^run \w+ succeeded in ", first.stdout, re.M), first.stdout[-3000:]
    for table in ["raw_events", "raw_registrations", "raw_orders", "customer_profile", "customer_rfm",
                  "customer_lifecycle", "customer_value_tier", "customer_segments", "kpi_daily",
                  "journey_enrolments", "send_ledger", "banner_assignments"]:
        assert _query(root, f"select count(*) from {table}")[0][0] > 0, table


def test_ingest_rows_balance_and_bad_rows_are_quarantined(pipeline):
    root, _env, _first = pipeline
    manifest = json.loads((root / "landing" / "_generator_manifest.json").read_text())
    quarantined = sum(_query(root, f"select count(*) from quarantine_{s}")[0][0]
                      for s in ("events", "registrations", "orders"))
    # Every deliberately bad row the generator wrote is quarantined, and nothing else is.
    assert quarantined == manifest["counts"]["dirty_rows"]
    read, loaded, dups, quar = _query(
        root, "select sum(rows_read), sum(rows_loaded), sum(duplicates_skipped), sum(rows_quarantined) from ingested_files"
    )[0]
    assert read == loaded + dups + quar


def test_profile_has_one_row_per_user_and_revenue_reconciles(pipeline):
    root, _env, _first = pipeline
    users, distinct = _query(root, "select count(*), count(distinct user_id) from customer_profile")[0]
    assert users == distinct
    profile_revenue, staged_revenue = _query(
        root,
        f"""select (select sum(revenue) from customer_profile),
                   (select sum(amount) from stg_shop__orders
                     where status = 'paid' and ordered_at <= timestamptz '{AS_OF}')""",
    )[0]
    assert profile_revenue == staged_revenue


def test_segments_are_exclusive_within_each_family(pipeline):
    root, _env, _first = pipeline
    overlaps = _query(
        root, "select user_id, segment_family from customer_segments group by all having count(*) > 1"
    )
    assert overlaps == []
