"""Task outcomes, exports and push bookkeeping on DuckDB and PostgreSQL: the same tasks, the same
outcome files (every quarantine reason, a tie at one handled_at, a file loaded twice), then the
exports and the push state; equal tables, equal payloads and byte-identical export files."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from helpers_banners_tasks import AS_OF, normalised_rows, write_tables
from test_banners_tasks_backends import task_inputs, task_roster, task_rules

from crmflow.tasks.engine import run_task_rules
from crmflow.tasks.export import changed_tasks, mark_tasks_pushed, unpushed_tasks, write_task_exports
from crmflow.tasks.outcomes import QUARANTINE_REASONS, ingest_task_outcomes
from crmflow.warehouse import apply_migrations, open_warehouse

pytest_plugins = ["helpers_postgres"]  # the postgres_url / postgres_warehouse fixtures

UTC = ZoneInfo("UTC")
HEADER = "task_id,outcome,handled_at,handling_seconds,operator_id,notes\n"


@pytest.fixture()
def duckdb_warehouse(tmp_path: Path):
    with open_warehouse(tmp_path / "warehouse.duckdb") as wh:
        yield wh


def outcome_files(ids: list[str]) -> dict[str, bytes]:
    a, b, c, d = ids[:4]
    first = (HEADER
             + f"{a},no_answer,2026-11-22T08:00:00Z,30,anna,voicemail\n"
             + f"{a},converted,2026-11-22T11:00:00+01:00,420,anna,\"ordered, happy\"\n"  # 10:00 UTC, latest
             + f"{b},done,2026-11-22 09:00:00,300,ben,\n"
             + f"{b},done,2026-11-22 09:00:00,300,ben,again\n"  # the same outcome twice in one file
             + f" {c} ,NO_ANSWER,2026-11-22T09:30:00Z,12,, \n"  # trimmed, lower-cased; no operator
             + f"{c},maybe,2026-11-22T09:00:00Z,10,anna,\n"
             + f"{c},done,yesterday,10,anna,\n"
             + f"{c},done,2026-11-22T09:00:00Z,-5,anna,\n"
             + f"{c},done,2026-11-22T09:00:00Z,1.5,anna,\n"
             + "task_unknown,done,2026-11-22T09:00:00Z,5,anna,\n"
             + f"{c},done,2026-11-22T09:00:00Z\n"  # malformed: too few columns
             + ",done,2026-11-22T09:00:00Z,5,anna,\n"
             + f"{c},done,2026-11-22T09:00:00Z,5,anna,caf\xe9\n").encode("latin-1")  # invalid UTF-8
    second = (HEADER
              + f"{a},no_answer,2026-11-22T08:00:00Z,30,anna,voicemail\n"  # already loaded: duplicate
              + f"{d},done,2026-11-22T12:00:00Z,60,cleo,\n"  # the same instant, two outcomes:
              + f"{d},converted,2026-11-22T12:00:00Z,90,cleo,\n").encode()  # the later line wins
    return {"2026-11-22.csv": first, "2026-11-22b.csv": second}


def run_outcomes_and_exports(wh, landing: Path, exports: Path) -> dict:
    apply_migrations(wh)
    write_tables(wh, task_inputs())
    rules, roster = task_rules(), task_roster()
    run_task_rules(wh, rules, roster, AS_OF, UTC)
    ids = [row[0] for row in wh.fetch_rows("select task_id from operator_tasks where status = 'open'")]
    folder = landing / "task_outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "2026-11-22b.csv").unlink(missing_ok=True)  # the other engine's run left it
    files = outcome_files(sorted(ids))
    (folder / "2026-11-22.csv").write_bytes(files["2026-11-22.csv"])
    first = ingest_task_outcomes(wh, landing, AS_OF + timedelta(hours=6))
    (folder / "2026-11-22b.csv").write_bytes(files["2026-11-22b.csv"])
    second = ingest_task_outcomes(wh, landing, AS_OF + timedelta(hours=7))
    again = ingest_task_outcomes(wh, landing, AS_OF + timedelta(hours=8))

    unpushed = unpushed_tasks(wh)
    delivered = unpushed.filter(pa.compute.equal(unpushed.column("status"), "open"))
    marked = mark_tasks_pushed(wh, delivered, AS_OF + timedelta(hours=8))
    next_day = AS_OF + timedelta(days=1)
    run_task_rules(wh, rules, roster, next_day, UTC)  # expiry and reassignment change statuses
    paths = write_task_exports(wh, exports)
    return {
        "ids": sorted(ids),
        "stats": [vars(s) for s in (first, second, again)],
        "outcomes": normalised_rows(wh, "select task_id, operator_id, outcome, handled_at, handling_seconds, "
                                        "notes, source_file, line_number, loaded_at from task_outcomes"),
        "quarantine": normalised_rows(wh, "quarantine_task_outcomes"),
        "files": normalised_rows(wh, "task_outcome_files"),
        "tasks": normalised_rows(wh, "operator_tasks"),
        "unpushed": unpushed.to_pylist(), "marked": marked,
        "pushes": normalised_rows(wh, "operator_task_pushes"),
        "unpushed_next_day": unpushed_tasks(wh).to_pylist(),
        "changed": changed_tasks(wh, next_day).to_pylist(),
        "csv": paths["csv"].read_bytes(), "jsonl": paths["jsonl"].read_bytes(),
    }


def test_task_outcomes_and_exports_are_the_same_on_duckdb_and_postgres(duckdb_warehouse, postgres_warehouse,
                                                                       tmp_path: Path):
    landing = tmp_path / "landing"  # one landing folder: the same file paths in both warehouses
    duck = run_outcomes_and_exports(duckdb_warehouse, landing, tmp_path / "duckdb")
    pg = run_outcomes_and_exports(postgres_warehouse, landing, tmp_path / "postgres")
    for key in duck:
        assert duck[key] == pg[key], key

    # The results themselves, so both engines agreeing on a wrong answer still fails.
    a, b, c, d = duck["ids"][:4]
    first, second, again = duck["stats"]
    assert (first["rows_read"], first["rows_loaded"], first["rows_quarantined"]) == (13, 4, 9)
    assert first["reasons"] == {"duplicate": 1, "invalid_outcome": 1, "invalid_timestamp": 1, "invalid_duration": 2,
                                "unknown_task": 1, "malformed_row": 1, "missing_value": 1, "invalid_utf8": 1}
    assert set(first["reasons"]) <= set(QUARANTINE_REASONS)
    assert (second["rows_loaded"], second["reasons"]) == (2, {"duplicate": 1})
    assert (again["files_loaded"], again["files_skipped"], again["tasks_updated"]) == (0, 2, 0)
    status = dict(duckdb_warehouse.fetch_rows("select task_id, status from operator_tasks"))
    assert (status[a], status[b], status[c], status[d]) == ("converted", "done", "no_answer", "converted")
    loaded_c = duckdb_warehouse.fetch_rows(
        "select task_id, operator_id, outcome from task_outcomes where line_number = 6")
    assert loaded_c == [(c, None, "no_answer")]
    lines = {(row[1], row[3]) for row in duck["quarantine"]}
    assert {(9, "invalid_duration"), (11, "unknown_task"), (5, "duplicate"), (14, "invalid_utf8")} <= lines

    # exports: every live task once, each operator's list ranked 1..n by priority
    with (tmp_path / "duckdb" / "tasks" / "operator_tasks.csv").open(newline="") as handle:
        exported = list(csv.DictReader(handle))
    live = duckdb_warehouse.scalar("select count(*) from operator_tasks where status in ('open', 'unassigned')")
    assert len(exported) == live > 0
    assert exported[0]["created_at"].endswith("Z") and json.loads(exported[0]["context"])["profile"]
    records = [json.loads(line) for line in duck["jsonl"].decode().splitlines()]
    assert [r["task_id"] for r in records] == [r["task_id"] for r in exported]
    ranks: dict[str | None, list[int]] = {}
    for record in records:
        ranks.setdefault(record["operator_id"], []).append(record["rank_in_list"])
    assert all(r == list(range(1, len(r) + 1)) for r in ranks.values())
    # push state: the delivered open tasks are not sent again until their status changes
    assert duck["marked"] == sum(1 for t in duck["unpushed"] if t["status"] == "open") > 0
    pushed = {t["task_id"] for t in duck["unpushed"] if t["status"] == "open"}
    resent = {t["task_id"]: t["status"] for t in duck["unpushed_next_day"] if t["task_id"] in pushed}
    assert resent and all(s != "open" for s in resent.values())  # expired (or re-opened) since the push
    assert all(t["due_at"].endswith("Z") for t in duck["changed"]) and duck["changed"]
