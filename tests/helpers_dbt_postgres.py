"""The dbt project on PostgreSQL and on DuckDB, side by side (tests/test_dbt_postgres.py).

A fresh PostgreSQL database per test run on the real server (127.0.0.1:5432, trust auth, user
postgres), deliberately unlike DuckDB where that must not matter: an ICU en-US collation (DuckDB
compares bytes) and a default time zone with daylight saving (crmflow runs dbt with PGTZ=UTC).
Input tables are copied from the DuckDB warehouse with COPY (psycopg2: the driver dbt-postgres
ships; this test does not depend on crmflow's warehouse backends), and relations are compared
row by row, order-independent, floats to 1e-9, timestamps as UTC instants, JSON by value.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

import duckdb
import psycopg2
import pytest

from crmflow.settings import REPO_ROOT

PG = {"host": os.environ.get("CRMFLOW_TEST_PG_HOST", "127.0.0.1"),
      "port": int(os.environ.get("CRMFLOW_TEST_PG_PORT", "5432")), "user": "postgres"}
DBT = str(Path(sys.executable).parent / "dbt")

# DuckDB column type -> PostgreSQL column type (exact types first; DECIMAL(p,s) keeps p and s).
PG_TYPES = {"VARCHAR": "text", "BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double precision",
            "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP WITH TIME ZONE": "timestamptz",
            "TIMESTAMP": "timestamp", "JSON": "jsonb", "FLOAT": "real"}


def require_server(server: dict | None = None) -> None:
    """Skip when no PostgreSQL answers on 127.0.0.1:5432, except in CI, where that is a failure."""
    server = server or PG
    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **server).close()
    except psycopg2.OperationalError as error:
        message = f"PostgreSQL not reachable at {server['host']}:{server['port']}: {str(error).strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def pg_connect(dbname: str):
    return psycopg2.connect(dbname=dbname, options="-c TimeZone=UTC", **PG)


@contextmanager
def fresh_database(prefix: str = "crmflow_dbt") -> Iterator[str]:
    """Create crm_raw/crm_ops/crm_analytics in a new database, yield its name, drop it afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"create database {name} template template0 encoding 'UTF8' "
                        "locale_provider icu icu_locale 'en-US' lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8'")
            cur.execute(f"alter database {name} set timezone to 'America/Los_Angeles'")
        with pg_connect(name) as con, con.cursor() as cur:
            cur.execute("create schema crm_raw; create schema crm_ops; create schema crm_analytics")
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f"drop database if exists {name} with (force)")
        admin.close()


def copy_tables(duck_path: Path, dbname: str, tables: dict[str, str]) -> None:
    """Copy DuckDB tables (name -> PostgreSQL schema) into PostgreSQL: created on first copy with the
    mapped column types, otherwise truncated and reloaded (views on them stay valid)."""
    with duckdb.connect(str(duck_path), read_only=True) as duck, pg_connect(dbname) as pg, \
            tempfile.TemporaryDirectory() as tmp, pg.cursor() as cur:
        duck.execute("set TimeZone = 'UTC'")
        for table, schema in tables.items():
            columns = duck.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'main' and table_name = ? order by ordinal_position", [table]).fetchall()
            if not columns:
                raise ValueError(f"copy_tables: no table {table!r} in {duck_path}")
            cur.execute("select to_regclass(%s) is not null", [f"{schema}.{table}"])
            if cur.fetchone()[0]:
                cur.execute(f"truncate {schema}.{table}")
            else:
                ddl = ", ".join(f'"{name}" {pg_type(kind)}' for name, kind in columns)
                cur.execute(f"create table {schema}.{table} ({ddl})")
            csv_path = Path(tmp) / f"{table}.csv"
            duck.execute(f"copy {table} to '{csv_path}' (format csv, header false)")
            with csv_path.open() as data:
                cur.copy_expert(f"copy {schema}.{table} from stdin (format csv)", data)


def pg_type(duck_type: str) -> str:
    if duck_type.startswith("DECIMAL"):
        return duck_type.replace("DECIMAL", "numeric")
    if duck_type not in PG_TYPES:
        raise ValueError(f"copy_tables: no PostgreSQL type for DuckDB type {duck_type!r}")
    return PG_TYPES[duck_type]


def postgres_env(url: str) -> dict[str, str]:
    """The variables profiles.yml's postgres output reads, from a postgresql:// URL (what crmflow
    derives from CRMFLOW_WAREHOUSE); the password goes to PGPASSWORD only."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"not a postgresql://user@host:port/dbname URL: {parts.scheme}://{parts.hostname}...")
    env = {"CRMFLOW_DBT_TARGET": "postgres", "CRMFLOW_PG_HOST": parts.hostname,
           "CRMFLOW_PG_PORT": str(parts.port or 5432), "CRMFLOW_PG_USER": unquote(parts.username or "postgres"),
           "CRMFLOW_PG_DBNAME": parts.path.strip("/"), "PGTZ": "UTC"}
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
    return env


def run_dbt(args: list[str], env: dict[str, str], work: Path, dbt_vars: dict[str, str],
            timeout: int = 900) -> str:
    """One dbt CLI invocation with its own target/log folders; its stdout, or an AssertionError with
    the failing lines."""
    command = [DBT, *args, "--profiles-dir", str(REPO_ROOT), "--project-dir", str(REPO_ROOT),
               "--target-path", str(work / "target"), "--log-path", str(work / "logs"),
               "--vars", json.dumps(dbt_vars)]
    full_env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1", **env}
    result = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    if result.returncode != 0:
        failed = [line for line in result.stdout.splitlines() if "ERROR" in line or "FAIL" in line]
        raise AssertionError(f"dbt {args[0]} failed ({env.get('CRMFLOW_DBT_TARGET', 'duckdb')}):\n"
                             + "\n".join(failed[:40]) + "\n" + (result.stdout + result.stderr)[-3000:])
    return result.stdout


def show_inline(sql: str, env: dict[str, str], work: Path) -> list[dict]:
    """The rows of `dbt show --inline` (project macros available) on the target `env` selects."""
    output = run_dbt(["show", "--inline", sql, "--output", "json", "--quiet", "--limit", "1000"], env, work,
                     {"as_of": "2026-01-01T00:00:00+00:00"})
    return json.loads(output)["show"]


# --- comparison -----------------------------------------------------------------------------------

def duckdb_rows(path: Path, relation: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        cursor = con.execute(f"select * from {relation}")
        names = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
        rows = cursor.fetchall()
    json_columns = {i for i, kind in enumerate(types) if kind == "JSON"}
    return names, [tuple(json.loads(v) if i in json_columns and v is not None else v for i, v in enumerate(row))
                   for row in rows]


def postgres_rows(dbname: str, relation: str) -> tuple[list[str], list[tuple]]:
    with pg_connect(dbname) as con, con.cursor() as cur:
        cur.execute(f"select * from {relation}")  # json/jsonb come back parsed
        return [d[0] for d in cur.description], cur.fetchall()


def _normal(value: object) -> object:
    """A value both engines can agree on: numbers as float (exact for ints), instants in UTC, JSON
    as canonical text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal | float):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def _sort_key(row: tuple) -> tuple:
    # floats rounded for ordering only, so rows equal to 1e-9 sort next to each other
    return tuple((0, "") if v is None else (1, round(v, 6)) if isinstance(v, float) else (2, str(v)) for v in row)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b and type(a) is type(b)


def differences(duck: tuple[list[str], list[tuple]], pg: tuple[list[str], list[tuple]]) -> list[str]:
    """Empty when both sides hold the same rows; else up to 5 lines saying how they differ."""
    (duck_names, duck_rows), (pg_names, pg_rows) = duck, pg
    if duck_names != pg_names:
        return [f"columns differ: duckdb {duck_names} vs postgres {pg_names}"]
    if len(duck_rows) != len(pg_rows):
        return [f"row count differs: duckdb {len(duck_rows)} vs postgres {len(pg_rows)}"]
    left = sorted((tuple(_normal(v) for v in row) for row in duck_rows), key=_sort_key)
    right = sorted((tuple(_normal(v) for v in row) for row in pg_rows), key=_sort_key)
    found = []
    for a, b in zip(left, right, strict=True):
        if not all(_same(x, y) for x, y in zip(a, b, strict=True)):
            columns = [n for n, x, y in zip(duck_names, a, b, strict=True) if not _same(x, y)]
            found.append(f"{columns}: duckdb {a} vs postgres {b}")
            if len(found) == 5:
                break
    return found
