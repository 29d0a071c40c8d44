"""A fresh PostgreSQL database per test session, on the real server at 127.0.0.1:5432.

Use the `postgres_url` fixture (session scope: creates `crmflow_test_<random>`, drops it after) or
`postgres_warehouse` (a connected warehouse on it, every crm_* schema and public emptied after each
test). Import both into a test module: `from helpers_postgres import postgres_url, postgres_warehouse`.
With no server the tests skip locally, but fail when CI=true: CI must never skip PostgreSQL.
Everything goes through crmflow's own PostgreSQL backend; tests never import psycopg.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from crmflow.warehouse import Warehouse, WarehouseConnectionError, open_warehouse

PG_HOST = os.environ.get("CRMFLOW_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CRMFLOW_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CRMFLOW_TEST_PG_USER", "postgres")


def server_url(dbname: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}?connect_timeout=3"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required in CI (CI=true) and is not available: {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new database `<prefix>_<random>` (its URL), dropped afterwards; skip/fail as above without a server."""
    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with open_warehouse(server_url("postgres")) as admin:
            admin.execute(f'create database "{dbname}"')  # outside a transaction: autocommit
    except WarehouseConnectionError as error:
        _unavailable(str(error))
    try:
        yield server_url(dbname)
    finally:
        with open_warehouse(server_url("postgres")) as admin:
            admin.execute(f'drop database if exists "{dbname}" with (force)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_database("crmflow_test") as url:
        yield url


@pytest.fixture
def postgres_warehouse(postgres_url: str) -> Iterator[Warehouse]:
    with open_warehouse(postgres_url) as warehouse:
        try:
            yield warehouse
        finally:
            schemas = ", ".join(warehouse.schemas.values())
            warehouse.execute(
                f"drop schema if exists {schemas} cascade; drop schema public cascade; create schema public"
            )
