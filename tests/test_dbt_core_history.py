"""Incremental histories across two as-ofs: a stage change closes the previous row and opens a new
one, re-running an as-of changes nothing, and a full refresh gives the current state."""

import datetime as dt
from pathlib import Path

import pytest
from helpers_dbt_core import AS_OF, CORE_SELECTION, query, run_dbt, seed_raw

LATER = "2026-07-01T00:00:00+00:00"
HISTORY_MODELS = ["customer_lifecycle_history", "customer_value_tier_history"]


def history(db: Path, table: str) -> list[tuple]:
    return query(db, f"select * from {table} order by user_id, valid_from")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("dbt_core_history")
    db = work / "warehouse.duckdb"
    seed_raw(db)
    # Seeds and models only (tests run in test_dbt_core_build): one dbt call per as-of.
    no_tests = [
        "build", *CORE_SELECTION, "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test",
    ]
    for as_of in (AS_OF, LATER):
        result = run_dbt(no_tests, db, work, as_of=as_of)
        assert result.returncode == 0, result.stdout[-5000:]
    after_two = {t: history(db, t) for t in HISTORY_MODELS}
    rerun = run_dbt(["run", "--select", *HISTORY_MODELS], db, work, as_of=LATER)
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    after_rerun = {t: history(db, t) for t in HISTORY_MODELS}
    current = query(db, "select user_id, lifecycle_stage from customer_lifecycle order by user_id")
    refresh = run_dbt(["run", "--full-refresh", "--select", *HISTORY_MODELS], db, work, as_of=LATER)
    assert refresh.returncode == 0, refresh.stdout[-5000:]
    return {
        "after_two": after_two, "after_rerun": after_rerun, "current": current,
        "after_refresh": history(db, "customer_lifecycle_history"),
    }


def test_stage_change_closes_previous_row(two_runs: dict) -> None:
    first = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    later = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    rows = [r for r in two_runs["after_two"]["customer_lifecycle_history"] if r[0] == "u2"]
    # u2's first purchase (2026-05-25) is 37 days old at the later as-of: new -> active.
    assert rows == [("u2", "new", first, later), ("u2", "active", later, None)]
    # Unchanged users keep their one open row from the first run.
    u3 = [r for r in two_runs["after_two"]["customer_lifecycle_history"] if r[0] == "u3"]
    assert u3 == [("u3", "prospect", first, None)]
    # Each user has exactly one open row (u8 registered between the two as-ofs).
    open_users = [r[0] for r in two_runs["after_two"]["customer_lifecycle_history"] if r[3] is None]
    assert sorted(open_users) == sorted(set(open_users)) and len(open_users) == 10
    u8 = [r for r in two_runs["after_two"]["customer_lifecycle_history"] if r[0] == "u8"]
    assert u8 == [("u8", "prospect", later, None)]


def test_entered_stage_since_last_run_is_a_simple_query(two_runs: dict) -> None:
    later = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    entered = sorted(
        (r[0], r[1]) for r in two_runs["after_two"]["customer_lifecycle_history"]
        if r[2] == later and r[3] is None
    )
    assert ("u2", "active") in entered and all(u != "u3" for u, _ in entered)


def test_rerun_same_as_of_changes_nothing(two_runs: dict) -> None:
    assert two_runs["after_rerun"] == two_runs["after_two"]


def test_full_refresh_gives_current_state(two_runs: dict) -> None:
    later = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    assert two_runs["after_refresh"] == [(u, s, later, None) for u, s in two_runs["current"]]
    # The incremental history's open rows agree with the full refresh.
    open_rows = [(r[0], r[1]) for r in two_runs["after_two"]["customer_lifecycle_history"] if r[3] is None]
    assert open_rows == two_runs["current"]
