"""CRMFLOW_WAREHOUSE parsing and the portable SQL parameter style (pure functions, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmflow.warehouse import WarehouseConfigError, parse_target
from crmflow.warehouse.sql import bind, parameter_names, quote_relation


def test_default_and_paths_are_duckdb_files(tmp_path: Path) -> None:
    default = parse_target(None, env={})
    assert default.kind == "duckdb" and default.path == Path("./var/warehouse.duckdb").resolve()
    from_env = parse_target(None, env={"CRMFLOW_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert from_env.kind == "duckdb" and from_env.path == tmp_path / "w.duckdb"
    assert str(from_env) == str(tmp_path / "w.duckdb")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
def test_postgres_urls(scheme: str) -> None:
    target = parse_target(f"{scheme}://crm:s3cr%40t@db.example:6543/crm_prod?sslmode=require", env={})
    assert (target.kind, target.host, target.port, target.dbname, target.user) == (
        "postgres",
        "db.example",
        6543,
        "crm_prod",
        "crm",
    )
    assert target.password == "s3cr@t"  # percent-decoded
    assert dict(target.options) == {"sslmode": "require"}
    assert target.connect_timeout_s == 5


def test_port_defaults_and_password_from_pgpassword() -> None:
    target = parse_target("postgresql://crm@localhost/crm?connect_timeout=2", env={"PGPASSWORD": "from-env"})
    assert target.port == 5432 and target.password == "from-env" and target.connect_timeout_s == 2
    assert parse_target("postgresql://crm@localhost/crm", env={}).password is None


def test_the_password_never_shows() -> None:
    target = parse_target("postgresql://crm:hunter2@db:5432/crm", env={})
    for text in (str(target), repr(target), target.redacted(), f"{target}", str([target])):
        assert "hunter2" not in text
    assert target.redacted() == "postgresql://crm@db:5432/crm"
    from_env = parse_target("postgresql://crm@db:5432/crm", env={"PGPASSWORD": "hunter2"})
    assert "hunter2" not in repr(from_env)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mysql://u:pw@h/db", "unsupported scheme 'mysql'"),
        ("postgresql://u:pw@h:5432/", "no database name"),
        ("postgresql://u:pw@h:5432/a/b", "no database name"),
        ("postgresql://u:pw@h:99999/db", "port is not a number"),
        ("postgresql://u:pw@h:port/db", "port is not a number"),
        ("postgresql://:pw@h/db", "no user"),
        ("postgresql://u:pw@/db", "no host"),
        ("postgresql://u:pw@h/db?sslmod=require", "unknown option 'sslmod'"),
        ("postgresql://u:pw@h/db?connect_timeout=soon", "connect_timeout='soon'"),
    ],
)
def test_bad_values_are_one_clear_line_without_the_password(value: str, message: str) -> None:
    with pytest.raises(WarehouseConfigError) as raised:
        parse_target(value, env={})
    text = str(raised.value)
    assert message in text and "CRMFLOW_WAREHOUSE=" in text
    assert "\n" not in text and "pw" not in text.replace("password", "")


def test_placeholders_skip_literals_identifiers_and_comments() -> None:
    sql = "select $a, '$b', \"$c\", $a::int -- $d\n, /* $e */ $f_1 from t where x like '5%'"
    assert parameter_names(sql) == ["a", "f_1"]
    bound = bind(sql, {"a": 1, "f_1": 2, "extra": 3}, "pyformat")
    assert bound.sql == (
        "select %(a)s, '$b', \"$c\", %(a)s::int -- $d\n, /* $e */ %(f_1)s from t where x like '5%%'"
    )
    assert bound.params == {"a": 1, "f_1": 2}
    assert bind(sql, {"a": 1, "f_1": 2}, "duckdb").sql == sql


def test_statements_without_placeholders_pass_through_untouched() -> None:
    ddl = "create table t (pct varchar default '100%'); select $$body$$, $tag$x$tag$"
    bound = bind(ddl, None, "pyformat")
    assert bound.sql == ddl and bound.params is None


def test_relations_are_quoted_and_checked() -> None:
    assert quote_relation("crm_raw.raw_events") == '"crm_raw"."raw_events"'
    assert quote_relation("raw_events") == '"raw_events"'
    for bad in ("a.b.c", "raw events", "x;drop", ""):
        with pytest.raises(ValueError, match="not a table name"):
            quote_relation(bad)


@pytest.mark.parametrize(("value", "master", "host", "port"), [
    ("spark://local[2]", "local[2]", None, None),
    ("spark://local[*]", "local[*]", None, None),
    ("SPARK://local", "local[*]", None, None),
    ("spark://thrift.example:10001", None, "thrift.example", 10001),
    ("spark://localhost", None, "localhost", 10000),
])
def test_spark_urls(value: str, master: str | None, host: str | None, port: int | None, tmp_path: Path) -> None:
    target = parse_target(value, env={"CRMFLOW_SPARK_DIR": str(tmp_path / "spark")})
    assert (target.kind, target.master, target.host, target.port) == ("spark", master, host, port)
    assert target.path == tmp_path / "spark"  # the warehouse and metastore folder
    assert parse_target(target.url_without_password(), env={}).redacted() == target.redacted()


@pytest.mark.parametrize("value", ["spark://", "spark://local[0]", "spark://local[x]", "spark://local[2",
                                   "spark://h:0", "spark://h:99999", "spark://a b", "spark://u@h:1"])
def test_bad_spark_urls_are_one_line(value: str) -> None:
    with pytest.raises(WarehouseConfigError, match="not a Spark warehouse; expected spark://local") as caught:
        parse_target(value, env={})
    assert "\n" not in str(caught.value)
