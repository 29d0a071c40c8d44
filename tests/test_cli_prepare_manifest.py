"""prepare_dbt_manifest parses again when the manifest was parsed for another target (issue 14):
a manifest of the PostgreSQL target used on DuckDB (or the other way) carries the wrong relation
names. The stamp beside it (orchestration/dbt_manifest.py) is compared instead of parsing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from orchestration.dbt_manifest import manifest_target, parsed_for, prepare_manifest, stamp_path

REPO_ROOT = Path(__file__).resolve().parent.parent
DUCKDB = {"CRMFLOW_DBT_TARGET": "duckdb", "CRMFLOW_WAREHOUSE": "/data/a/warehouse.duckdb"}
POSTGRES = {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_PG_DBNAME": "crm_prod", "CRMFLOW_PG_HOST": "db"}


class FakeParse:
    """Writes a manifest naming the target it was parsed for, and counts the parses."""

    def __init__(self, manifest: Path) -> None:
        self.manifest, self.parses = manifest, 0

    def __call__(self, env: Mapping[str, str]) -> None:
        self.parses += 1
        self.manifest.write_text(json.dumps({"parse": self.parses, **manifest_target(env)}))


def test_parses_again_only_when_the_target_differs(tmp_path):
    manifest = tmp_path / "target" / "manifest.json"
    manifest.parent.mkdir()
    parse = FakeParse(manifest)

    assert prepare_manifest(manifest, DUCKDB, parse)  # no manifest yet
    assert not prepare_manifest(manifest, DUCKDB, parse)  # same target: the stamp, no parse
    # another DuckDB file of the same name gives the same relation names: no parse
    assert not prepare_manifest(manifest, {**DUCKDB, "CRMFLOW_WAREHOUSE": "/other/warehouse.duckdb"}, parse)
    assert prepare_manifest(manifest, POSTGRES, parse)  # DuckDB's manifest is not PostgreSQL's
    assert json.loads(manifest.read_text())["engine"] == "postgres"
    assert not prepare_manifest(manifest, POSTGRES, parse)
    assert prepare_manifest(manifest, {**POSTGRES, "CRMFLOW_PG_DBNAME": "crm_test"}, parse)  # another database
    assert prepare_manifest(manifest, DUCKDB, parse)  # and back
    assert json.loads(manifest.read_text())["engine"] == "duckdb"
    assert prepare_manifest(manifest, DUCKDB, parse, force=True)
    assert parse.parses == 5


def test_a_manifest_rewritten_since_its_stamp_is_parsed_again(tmp_path):
    """Any other dbt command in the project folder (a test's dbt build for PostgreSQL) rewrites
    target/manifest.json without a stamp: the old stamp no longer describes it."""
    manifest = tmp_path / "manifest.json"
    parse = FakeParse(manifest)
    prepare_manifest(manifest, DUCKDB, parse)
    assert parsed_for(manifest, DUCKDB)
    manifest.write_text(json.dumps({"written by": "dbt build --target postgres, elsewhere"}))
    assert not parsed_for(manifest, DUCKDB)
    assert prepare_manifest(manifest, DUCKDB, parse)
    stamp_path(manifest).write_text("not json")
    assert not parsed_for(manifest, DUCKDB)
    stamp_path(manifest).unlink()
    assert not parsed_for(manifest, DUCKDB)


def test_the_stamp_names_the_database_dbt_writes_into_relation_names(tmp_path):
    """Real `dbt parse`s for DuckDB, then PostgreSQL (parse needs no server): each stamp's database
    is the one in the manifest's relation names, and a target change gives the other names."""
    manifest = tmp_path / "manifest.json"
    parses: list[str] = []

    def dbt_parse(env: Mapping[str, str]) -> None:
        parses.append(env["CRMFLOW_DBT_TARGET"])
        subprocess.run([str(Path(sys.executable).parent / "dbt"), "parse", "--profiles-dir", str(REPO_ROOT),
                        "--project-dir", str(REPO_ROOT), "--target-path", str(tmp_path), "--quiet"],
                       check=True, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env},
                       cwd=REPO_ROOT, timeout=600)

    def relation_databases() -> set[str]:
        nodes = json.loads(manifest.read_text())["nodes"].values()
        return {node["database"] for node in nodes if node["resource_type"] == "model"}

    duckdb_env = {"CRMFLOW_DBT_TARGET": "duckdb", "CRMFLOW_WAREHOUSE": str(tmp_path / "shop.duckdb")}
    postgres_env = {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_PG_DBNAME": "crm_stamp_test"}
    assert prepare_manifest(manifest, duckdb_env, dbt_parse)
    assert relation_databases() == {manifest_target(duckdb_env)["database"]} == {"shop"}
    assert prepare_manifest(manifest, postgres_env, dbt_parse)
    assert relation_databases() == {manifest_target(postgres_env)["database"]} == {"crm_stamp_test"}
    assert not prepare_manifest(manifest, postgres_env, dbt_parse)
    assert parses == ["duckdb", "postgres"]
