"""CRMFLOW_WAREHOUSE from settings to resources, dbt and the CLI: a DuckDB path or a postgresql:// URL.

The password never leaves PGPASSWORD (not in settings' str, resource config, dbt arguments or errors);
`crmflow run` opens the warehouse once and applies the migrations before any step, and an unreachable
server or a missing database is one line naming host, port and database (exit 2). Read-only commands on
PostgreSQL check the connection and the migrations instead of a DuckDB file. Real servers only: the
PostgreSQL fixture (tests/helpers_postgres.py) and a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from helpers_postgres import PG_HOST, PG_PORT, postgres_url, postgres_warehouse  # noqa: F401 (fixtures)
from typer.testing import CliRunner

from crmflow.errors import CrmflowUserError
from crmflow.settings import load_settings
from crmflow.warehouse import MIGRATIONS, WarehouseConfigError, apply_migrations
from crmflow.warehouse.migrations import applied_versions
from orchestration.cli import app, migrate_warehouse
from orchestration.dbt import dbt_target_env
from orchestration.resources import WarehouseResource

SECRET = "s3cr3t-pw"
READ_ONLY_COMMANDS = [["ledger", "status"], ["journeys", "preview", "welcome_series"],
                      ["report", "--as-of", "2026-11-22T06:00:00Z"], ["privacy", "export", "u1"]]


def cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_settings_take_a_duckdb_path_or_a_postgres_url_and_never_show_the_password(tmp_path: Path) -> None:
    default = load_settings({}).warehouse
    assert default.kind == "duckdb" and default.path == Path("var/warehouse.duckdb").resolve()
    duck = load_settings({"CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")}).warehouse
    assert str(duck) == str(tmp_path / "w.duckdb")
    pg = load_settings({"CRMFLOW_WAREHOUSE": f"postgresql://crm:{SECRET}@db.internal:6543/shop"}).warehouse
    assert (pg.kind, pg.host, pg.port, pg.dbname, pg.user, pg.password) == \
        ("postgres", "db.internal", 6543, "shop", "crm", SECRET)
    assert SECRET not in f"{pg} {pg!r} {pg.url_without_password()}"
    from_env = load_settings({"CRMFLOW_WAREHOUSE": "postgresql://crm@db/shop", "PGPASSWORD": SECRET}).warehouse
    assert from_env.password == SECRET and from_env.port == 5432


def test_a_bad_warehouse_url_is_a_user_error_naming_the_value_without_password() -> None:
    with pytest.raises(WarehouseConfigError, match="unsupported scheme 'mysql'") as raised:
        load_settings({"CRMFLOW_WAREHOUSE": f"mysql://crm:{SECRET}@db/shop"})
    assert SECRET not in str(raised.value)
    with pytest.raises(CrmflowUserError, match="CRMFLOW_INGEST_MAX_LINE_BYTES='0'"):
        load_settings({"CRMFLOW_INGEST_MAX_LINE_BYTES": "0"})


def test_dbt_gets_the_matching_target_and_the_password_only_as_pgpassword(tmp_path: Path) -> None:
    duck = load_settings({"CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")}).warehouse
    assert dbt_target_env(duck) == {"CRMFLOW_DBT_TARGET": "duckdb", "CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")}
    pg = load_settings({"CRMFLOW_WAREHOUSE": f"postgresql://crm:{SECRET}@db:6543/shop?connect_timeout=3"}).warehouse
    env = dbt_target_env(pg)
    assert env.pop("PGPASSWORD") == SECRET
    assert env == {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_PG_HOST": "db", "CRMFLOW_PG_PORT": "6543",
                   "CRMFLOW_PG_USER": "crm", "CRMFLOW_PG_DBNAME": "shop", "PGTZ": "UTC",
                   "CRMFLOW_WAREHOUSE": "postgresql://crm@db:6543/shop?connect_timeout=3"}


def test_the_resource_config_holds_no_password_and_opens_postgres(postgres_url: str,  # noqa: F811
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "before")  # restored afterwards: from_target sets it for the process
    monkeypatch.delenv("PGPASSWORD")
    with_password = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)  # trust auth ignores it
    resource = WarehouseResource.from_target(load_settings({"CRMFLOW_WAREHOUSE": with_password}).warehouse)
    assert resource.path == postgres_url  # the URL without its password: the Dagster UI shows it
    assert os.environ["PGPASSWORD"] == SECRET  # where the dbt subprocess and open() find it
    with resource.open() as warehouse:
        assert warehouse.dialect == "postgres" and warehouse.scalar("select 1") == 1


def test_run_against_an_unreachable_server_is_one_line_before_any_step(monkeypatch) -> None:
    port = closed_port()
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", f"postgresql://crm:{SECRET}@127.0.0.1:{port}/shop?connect_timeout=2")
    code, out, err = cli(["run", "--as-of", "2026-11-22T06:00:00Z"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("crmflow: error: "), err
    assert "127.0.0.1" in lines[0] and str(port) in lines[0] and "shop" in lines[0]
    assert SECRET not in out + err and "crmflow run as of" not in out  # no step started


def test_run_against_a_missing_database_is_one_line(postgres_url: str, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/crmflow_no_such_db")
    code, out, err = cli(["run", "--as-of", "2026-11-22T06:00:00Z"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "crmflow_no_such_db" in err and str(PG_PORT) in err and "crmflow run as of" not in out


def test_migrations_are_applied_at_start_once(tmp_path: Path, postgres_warehouse, monkeypatch) -> None:  # noqa: F811
    every = [m.version for m in MIGRATIONS]
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", str(tmp_path / "w.duckdb"))
    assert migrate_warehouse() == every and migrate_warehouse() == []
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", postgres_warehouse.target.url_without_password())
    assert migrate_warehouse() == every and migrate_warehouse() == []
    assert applied_versions(postgres_warehouse) == every


@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=lambda a: a[0])
def test_read_only_commands_on_postgres_need_the_migrations(args, postgres_warehouse, monkeypatch,  # noqa: F811
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", postgres_warehouse.target.url_without_password())
    monkeypatch.setenv("CRMFLOW_EXPORT_DIR", str(tmp_path / "exports"))
    code, _, err = cli(args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "lacks crmflow's tables (migrations 1, " in err and "run `crmflow run` first" in err


def test_ledger_status_reads_a_migrated_postgres_warehouse(postgres_warehouse, monkeypatch) -> None:  # noqa: F811
    apply_migrations(postgres_warehouse)
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", postgres_warehouse.target.url_without_password())
    code, out, err = cli(["ledger", "status", "--json"])
    assert code == 0, err
    assert json.loads(out)["counts"] == [] and json.loads(out)["unknown"] == []


def test_read_only_commands_on_an_unreachable_server_are_one_line(monkeypatch) -> None:
    port = closed_port()
    monkeypatch.setenv("CRMFLOW_WAREHOUSE", f"postgresql://crm:{SECRET}@127.0.0.1:{port}/shop?connect_timeout=2")
    code, _, err = cli(["ledger", "status"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in err, err
    assert SECRET not in err
