"""Task outcome ingestion: valid rows update status, bad rows are quarantined with a reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
from helpers_banners_tasks import AS_OF, make_lifecycle, make_profiles

from crmflow.tasks.config import OperatorRoster, TaskRules
from crmflow.tasks.engine import run_task_rules
from crmflow.tasks.outcomes import QUARANTINE_REASONS, ingest_task_outcomes


def setup_tasks() -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    make_profiles(con, [{"user_id": u, "locale": "de", "revenue": r} for u, r in (("a", 3), ("b", 2), ("c", 1))])
    make_lifecycle(con, {"a": "silent", "b": "silent", "c": "silent"})
    rules = TaskRules.model_validate({"rules": [{"id": "r", "recall": {"predicate": {
        "predicate": "lifecycle_stage", "stages": ["silent"]}}}]})
    roster = OperatorRoster.model_validate({"regions": {"DACH": ["DE"]}, "operators": [
        {"id": "anna", "team": "t", "region": "DACH", "languages": ["de"], "daily_capacity": 10}]})
    run_task_rules(con, rules, roster, AS_OF, ZoneInfo("UTC"))
    ids = [r[0] for r in con.execute("select task_id from operator_tasks order by priority desc").fetchall()]
    return con, ids


def test_outcomes_update_status_and_bad_rows_are_quarantined(tmp_path: Path):
    con, (ta, tb, tc) = setup_tasks()
    folder = tmp_path / "task_outcomes"
    folder.mkdir()
    (folder / "2026-11-22.csv").write_text(
        "task_id,outcome,handled_at,handling_seconds,operator_id,notes\n"
        f"{ta},no_answer,2026-11-22T08:00:00Z,30,anna,voicemail\n"
        f"{ta},converted,2026-11-22T10:00:00Z,420,anna,\"ordered, happy\"\n"
        f"{tb},done,2026-11-22T09:00:00Z,300,anna,\n"
        f"{tc},maybe,2026-11-22T09:00:00Z,10,anna,\n"
        f"{tc},done,yesterday,10,anna,\n"
        f"{tc},done,2026-11-22T09:00:00Z,-5,anna,\n"
        "task_unknown,done,2026-11-22T09:00:00Z,5,anna,\n"
        f"{tc},done,2026-11-22T09:00:00Z\n"
        ",done,2026-11-22T09:00:00Z,5,anna,\n"
    )
    stats = ingest_task_outcomes(con, tmp_path, AS_OF + timedelta(hours=6))
    assert (stats.rows_read, stats.rows_loaded, stats.rows_quarantined) == (9, 3, 6)
    assert stats.reasons == {"invalid_outcome": 1, "invalid_timestamp": 1, "invalid_duration": 1,
                             "unknown_task": 1, "malformed_row": 1, "missing_value": 1}
    codes = {r.split(":")[0] for (r,) in con.execute("select reason from quarantine_task_outcomes").fetchall()}
    assert codes == set(stats.reasons) and codes <= set(QUARANTINE_REASONS)  # the documented list
    status = dict(con.execute("select task_id, status from operator_tasks").fetchall())
    assert status == {ta: "converted", tb: "done", tc: "open"}
    quarantined = con.execute("select line_number, reason, field from quarantine_task_outcomes "
                              "order by line_number").fetchall()
    assert (5, "invalid_outcome", "outcome") in quarantined and (8, "unknown_task", "task_id") in quarantined
    assert any(r[1].startswith("malformed_row") and r[0] == 9 for r in quarantined)
    assert (10, "missing_value", "task_id") in quarantined  # line numbers stay right after a bad line
    notes = con.execute("select notes from task_outcomes where outcome = 'converted'").fetchall()[0][0]
    assert notes == "ordered, happy"

    again = ingest_task_outcomes(con, tmp_path, AS_OF + timedelta(hours=7))
    assert again.files_skipped == 1 and again.rows_read == 0
    assert con.execute("select count(*) from task_outcomes").fetchall()[0][0] == 3


def test_missing_required_column_quarantines_the_file(tmp_path: Path):
    con, _ = setup_tasks()
    (tmp_path / "task_outcomes").mkdir()
    (tmp_path / "task_outcomes" / "bad.csv").write_text("task_id,result\nx,done\n")
    stats = ingest_task_outcomes(con, tmp_path, AS_OF)
    assert stats.rows_loaded == 0 and stats.rows_quarantined == 1
    reason = con.execute("select reason from quarantine_task_outcomes").fetchall()[0][0]
    assert reason.startswith("missing_columns: outcome, handled_at, handling_seconds")


def test_no_landing_folder_is_fine(tmp_path: Path):
    con = duckdb.connect()
    stats = ingest_task_outcomes(con, tmp_path, AS_OF)
    assert stats.files_loaded == 0 and stats.tasks_updated == 0
