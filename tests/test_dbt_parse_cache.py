"""One dbt parse per run (orchestration/dbt_parse_cache.py): later steps start from the first's parse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestration import dbt_parse_cache as cache


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    return tmp_path


def test_the_key_follows_the_vars_and_the_dbt_target() -> None:
    duck = {"CRMFLOW_DBT_TARGET": "duckdb", "CRMFLOW_WAREHOUSE": "/w/a.duckdb"}
    key = cache.parse_key('{"as_of": "2026-01-01"}', duck)
    assert key == cache.parse_key('{"as_of": "2026-01-01"}', dict(duck))
    assert key != cache.parse_key('{"as_of": "2026-01-02"}', duck)
    assert key != cache.parse_key('{"as_of": "2026-01-01"}', {**duck, "CRMFLOW_DBT_TARGET": "postgres"})
    assert key != cache.parse_key('{"as_of": "2026-01-01"}', {**duck, "CRMFLOW_WAREHOUSE": "/w/b.duckdb"})


def test_the_first_step_parses_and_the_next_step_starts_from_its_parse(project: Path) -> None:
    first = cache.step_target_path(project, "crmflow_dbt_assets", "k1")
    assert not (first / cache.PARTIAL_PARSE).exists()  # nothing to start from: dbt parses
    first.mkdir(parents=True)
    (first / cache.PARTIAL_PARSE).write_bytes(b"parse of run 1")
    cache.keep_parse(project, first, "k1")

    second = cache.step_target_path(project, "crmflow_dbt_assets_2", "k1")
    assert second != first
    assert (second / cache.PARTIAL_PARSE).read_bytes() == b"parse of run 1"
    other_as_of = cache.step_target_path(project, "crmflow_dbt_assets_2", "k2")
    assert not (other_as_of / cache.PARTIAL_PARSE).exists()

    # A later step's parse does not replace the kept one (same vars: same parse).
    (second / cache.PARTIAL_PARSE).write_bytes(b"parse of step 2")
    cache.keep_parse(project, second, "k1")
    assert (project / "target" / "parse" / "k1" / cache.PARTIAL_PARSE).read_bytes() == b"parse of run 1"


def test_a_step_without_a_parse_keeps_nothing(project: Path) -> None:
    step = cache.step_target_path(project, "crmflow_dbt_assets", "k1")
    cache.keep_parse(project, step, "k1")
    assert not (project / "target" / "parse" / "k1").exists()


def test_only_the_newest_parses_are_kept(project: Path) -> None:
    for n in range(cache.KEEP + 3):
        step = project / "target" / f"step-{n}"
        step.mkdir(parents=True)
        (step / cache.PARTIAL_PARSE).write_bytes(b"x")
        cache.keep_parse(project, step, f"key{n}")
        os.utime(project / "target" / "parse" / f"key{n}", (1_000_000 + n, 1_000_000 + n))
    kept = sorted(p.name for p in (project / "target" / "parse").iterdir())
    assert len(kept) == cache.KEEP
    assert "key0" not in kept and f"key{cache.KEEP + 2}" in kept
