"""The stage benchmark keeps working: a tiny end-to-end run (ingest groups only) and the timing maths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from stages import step_timings  # noqa: E402


def test_bench_runs_end_to_end_on_a_tiny_landing(tmp_path: Path) -> None:
    out, figures_path, work = tmp_path / "bench.md", tmp_path / "bench.json", tmp_path / "work"
    # A subprocess: the benchmark points CRMFLOW_* at its own folder before importing the definitions.
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_bench.py"), "--users", "200", "--days", "30",
         "--groups", "ingest", "--dispatch-emails", "200", "--dispatch-sms", "20",
         "--dispatch-push", "20", "--out", str(out), "--json", str(figures_path), "--work-dir", str(work)],
        capture_output=True, text=True, timeout=180, cwd=REPO, env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    full, inc = figures["full_run"], figures["incremental_run"]
    assert full["success"] and inc["success"]
    assert full["by_group"]["ingest"] > 0 and full["ingest_rows_per_s"] > 0
    assert {s["step_key"] for s in full["steps"]} >= {"raw_events", "raw_orders", "raw_registrations"}
    assert full["landing_rows"] == sum(figures["generate"]["counts"][k]
                                       for k in ("event_rows", "order_rows", "registration_rows"))
    assert 0 < inc["landing_rows"] < full["landing_rows"]
    assert figures["lower_bound"]["seconds"] > 0 and figures["peak_rss_mib"]["self"] > 50
    assert figures["machine"]["nproc"] >= 1
    ingest = full["by_stage"]["ingest"]
    assert ingest["cpu_seconds"] > 0 and ingest["peak_rss_mib"] > 50 and full["peak_rss_mib"] >= ingest["peak_rss_mib"]
    assert figures["dispatch"]["channels"]["email"]["sent"] == 200
    assert figures["definitions"]["fresh_process_wall_seconds"] > 0
    text = out.read_text()
    assert "## Full run" in text and "| ingest |" in text and "## Incremental day" in text
    assert "| target | limit | measured | met |" in text and "<!-- /bench:users=200 -->" in text
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as con:
        files = con.execute("select count(*) from ingested_files").fetchone()[0]
    assert files >= len(list((work / "landing").rglob("*-*.*"))) - 1  # every landing file was ingested


def _record(ts: float, step: str, kind: str, asset: str | None = None, duration: float | None = None):
    data = None
    if asset is not None:
        metadata = {} if duration is None else {"Execution Duration": dg.MetadataValue.float(duration)}
        data = SimpleNamespace(materialization=SimpleNamespace(asset_key=dg.AssetKey(asset), metadata=metadata))
    return SimpleNamespace(timestamp=ts, dagster_event=SimpleNamespace(
        step_key=step, event_type_value=kind, event_specific_data=data))


def test_multi_group_step_is_split_by_model_time_and_the_rest_is_overhead() -> None:
    groups = {"raw_events": "ingest", "stg_a": "staging", "int_b": "intermediate", "mart_c": "marts"}
    records = [
        _record(100.0, "raw_events", "STEP_START"),
        _record(101.0, "raw_events", "ASSET_MATERIALIZATION", "raw_events"),
        _record(102.0, "raw_events", "STEP_SUCCESS"),
        _record(102.0, "dbt", "STEP_START"),
        _record(105.0, "dbt", "ASSET_MATERIALIZATION", "stg_a", 1.0),
        _record(106.0, "dbt", "ASSET_MATERIALIZATION", "int_b", 2.0),
        _record(108.0, "dbt", "ASSET_MATERIALIZATION", "mart_c", 3.0),
        _record(112.0, "dbt", "STEP_SUCCESS"),
        _record(112.0, "journey", "STEP_START"),
        _record(113.5, "journey", "STEP_FAILURE"),
    ]
    timing = step_timings(records, lambda key: groups.get(key.path[-1]))
    assert timing.wall_seconds == 13.5
    assert timing.by_group == {"ingest": 2.0, "staging": 1.0, "intermediate": 2.0, "marts": 3.0,
                               "dbt (overhead)": 4.0, "other": 1.5}
    assert timing.failed_steps == ["journey"]


def test_report_replaces_only_its_own_scale_section(tmp_path: Path) -> None:
    from run_bench import write_report

    out = tmp_path / "benchmarks.md"
    out.write_text("# Benchmarks\n\nHand-written notes.\n\n<!-- bench:users=5 -->\nold five\n<!-- /bench:users=5 -->\n"
                   "<!-- bench:users=7 -->\nseven\n<!-- /bench:users=7 -->\n")
    figures = json.loads((REPO / "tests" / "fixtures" / "bench_figures.json").read_text())
    figures["config"]["users"] = 5
    write_report(out, figures)
    text = out.read_text()
    assert "Hand-written notes." in text and "seven" in text and "old five" not in text
    assert text.count("<!-- bench:users=5 -->") == 1 and "## 5 users" in text


def test_bench_runs_journeys_without_waiting_for_approval(tmp_path: Path, monkeypatch) -> None:
    # The repository's roles.yaml requires approval, so unchanged the journey stages and the tick
    # would time journeys that enrol nobody; the benchmark's own copy of marketing/ lifts that.
    import yaml
    from run_bench import point_environment_at

    for name in ("CRMFLOW_WAREHOUSE", "CRMFLOW_LANDING_DIR", "CRMFLOW_OUTBOX_DIR", "CRMFLOW_EXPORT_DIR",
                 "CRMFLOW_MARKETING_DIR", "CRMFLOW_ROLES_FILE", "CRMFLOW_TIMEZONE", "DBT_SEND_ANONYMOUS_USAGE_STATS",
                 "DO_NOT_TRACK"):
        monkeypatch.setenv(name, "")  # recorded, so the test's environment is restored afterwards
        monkeypatch.delenv(name)
    point_environment_at(tmp_path)
    marketing = Path(os.environ["CRMFLOW_MARKETING_DIR"])
    assert marketing == tmp_path / "marketing"
    assert yaml.safe_load((marketing / "roles.yaml").read_text())["approval"]["required"] is False
    assert yaml.safe_load((REPO / "marketing" / "roles.yaml").read_text())["approval"]["required"] is True
    assert sorted(p.name for p in (marketing / "journeys").iterdir()) == \
        sorted(p.name for p in (REPO / "marketing" / "journeys").iterdir())
