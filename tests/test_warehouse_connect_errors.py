"""A warehouse that cannot be opened: one line naming it, never the password (real server, real files)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.register_assert_rewrite("helpers_postgres")  # imported here and loaded as a plugin below
from helpers_postgres import PG_HOST, PG_PORT, PG_USER, _unavailable  # noqa: E402

from crmflow.warehouse import WarehouseConnectionError, open_warehouse, parse_target  # noqa: E402

pytest_plugins = ["helpers_postgres"]  # the postgres_url fixture

SECRET = "pa55-w0rd-XYZ"


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect_error(url: str) -> str:
    started = time.monotonic()
    with pytest.raises(WarehouseConnectionError) as raised, open_warehouse(url):
        pass
    assert time.monotonic() - started < 10, "a failed connect must not hang (connect_timeout)"
    message = str(raised.value)
    assert "\n" not in message
    assert SECRET not in message and SECRET not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained driver error
    return message


def test_nothing_listening_names_host_port_and_database() -> None:
    port = free_port()
    message = connect_error(f"postgresql://{PG_USER}:{SECRET}@127.0.0.1:{port}/crm_prod?connect_timeout=3")
    assert f"127.0.0.1:{port}" in message and "'crm_prod'" in message
    assert "connection refused" in message


def test_a_server_that_never_answers_times_out(postgres_url: str) -> None:
    # A listening socket that never accepts: the TCP handshake completes, PostgreSQL's reply never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        message = connect_error(f"postgresql://{PG_USER}:{SECRET}@127.0.0.1:{port}/crm?connect_timeout=2")
    assert time.monotonic() - started >= 1.5  # it did wait for connect_timeout, then gave up
    assert f"127.0.0.1:{port}" in message and "no answer within 2 s (connect_timeout)" in message


def test_no_server_skips_locally_and_fails_in_ci(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        _unavailable("connection refused")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL server"):
        _unavailable("connection refused")


def test_a_missing_database_is_named(postgres_url: str) -> None:
    message = connect_error(f"postgresql://{PG_USER}:{SECRET}@{PG_HOST}:{PG_PORT}/crmflow_no_such_db")
    assert message == (
        f"cannot connect to the PostgreSQL warehouse at {PG_HOST}:{PG_PORT}, database 'crmflow_no_such_db', "
        f"user '{PG_USER}': database 'crmflow_no_such_db' does not exist"
    )


def test_a_missing_role_is_named(postgres_url: str) -> None:
    message = connect_error(f"postgresql://nobody_here:{SECRET}@{PG_HOST}:{PG_PORT}/postgres")
    assert "role 'nobody_here' does not exist" in message


def test_a_password_in_the_url_never_reaches_messages_or_logs(postgres_url: str, caplog) -> None:
    # The server trusts 127.0.0.1, so any password is accepted: what matters is that it never shows.
    url = postgres_url.replace(f"{PG_USER}@", f"{PG_USER}:{SECRET}@")
    caplog.set_level(logging.DEBUG)
    with open_warehouse(url) as wh:
        assert wh.target.password == SECRET
        assert wh.fetch_rows("select 1") == [(1,)]
        for text in (repr(wh), str(wh.target), repr(wh.target)):
            assert SECRET not in text
        with pytest.raises(Exception) as raised:
            wh.execute("select * from no_such_table_here")
        assert SECRET not in str(raised.value)
    assert "opening the PostgreSQL warehouse" in caplog.text
    assert SECRET not in caplog.text


def test_pgpassword_is_used_and_not_shown(postgres_url: str, monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    target = parse_target(postgres_url)
    assert target.password == SECRET and SECRET not in repr(target)
    with open_warehouse(target) as wh:
        assert wh.fetch_rows("select current_user")[0][0] == PG_USER


def test_a_file_that_is_not_duckdb_is_named(tmp_path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(WarehouseConnectionError) as raised, open_warehouse(path):
        pass
    message = str(raised.value)
    assert message.startswith(f"cannot open the DuckDB warehouse {path}: ") and "\n" not in message
