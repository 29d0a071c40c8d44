"""Where the warehouse is: `CRMFLOW_WAREHOUSE` parsed into a DuckDB file, a PostgreSQL server or Spark.

The value is either a DuckDB file path (default `./var/warehouse.duckdb`, the embedded warehouse) or a
URL `postgresql://user[:password]@host[:port]/dbname` (`postgres://` too; the password may instead come
from `PGPASSWORD`). The password never appears in `str()`, `repr()`, errors or logs: everything that
describes a target goes through `redacted()`.

`spark://local[N]` (or `spark://local[*]`) is a local PySpark session, `spark://host[:port]` a Spark
Thrift server (parsed, documented in docs/scaling.md, not tested); the Spark folder (warehouse and
metastore) is CRMFLOW_SPARK_DIR (default ./var/spark). Spark holds the analytics only: crmflow's
Python state lives in CRMFLOW_STATE (crmflow.settings; docs/scaling.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_DUCKDB_PATH = "./var/warehouse.duckdb"
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_CONNECT_TIMEOUT_S = 5
POSTGRES_SCHEMES = ("postgresql", "postgres")
SPARK_SCHEME = "spark"
DEFAULT_SPARK_DIR = "./var/spark"
DEFAULT_SPARK_THRIFT_PORT = 10000
_SPARK_LOCAL = re.compile(r"local(\[(?:[1-9][0-9]*|\*)\])?")
_SPARK_HOST = re.compile(r"([A-Za-z0-9][A-Za-z0-9.-]*)(?::([0-9]{1,5}))?")
# Query parameters a URL may carry (libpq names); anything else is a typo, not a silent default.
POSTGRES_URL_OPTIONS = ("sslmode", "connect_timeout", "application_name")
_URL_CREDENTIALS = re.compile(r"(://[^:/@]*):[^@]*@")


class WarehouseConfigError(ValueError):
    """CRMFLOW_WAREHOUSE names no warehouse crmflow can use (the message is one line, no password)."""


@dataclass(frozen=True)
class WarehouseTarget:
    kind: Literal["duckdb", "postgres", "spark"]
    path: Path | None = None  # DuckDB: the file; Spark: the folder of its warehouse and metastore
    master: str | None = None  # Spark in this process's machine: local[2], local[*]
    host: str | None = None
    port: int | None = None
    dbname: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: tuple[tuple[str, str], ...] = ()

    def redacted(self) -> str:
        """The target as a user would write it, without the password."""
        if self.kind == "duckdb":
            return str(self.path)
        if self.kind == "spark":
            return f"spark://{self.master or f'{self.host}:{self.port}'}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"WarehouseTarget({self.redacted()!r})"

    def url_without_password(self) -> str:
        """The target as CRMFLOW_WAREHOUSE would say it, options kept, password left out (it then comes
        from PGPASSWORD): safe for Dagster resource config, logs and subprocess arguments."""
        if self.kind in ("duckdb", "spark"):
            return self.redacted()
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"postgresql://{quote(self.user or '', safe='')}@{self.host}:{self.port}/{quote(self.dbname or '')}{query}"

    @property
    def connect_timeout_s(self) -> int:
        return int(dict(self.options).get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S))


def redact_url(value: str) -> str:
    """`scheme://user:secret@host` -> `scheme://user:***@host` for messages about a bad value."""
    return _URL_CREDENTIALS.sub(r"\1:***@", value)


def parse_target(
    value: WarehouseTarget | str | Path | None = None, env: Mapping[str, str] | None = None
) -> WarehouseTarget:
    """Parse a CRMFLOW_WAREHOUSE value (None: read it from `env`, default os.environ); a target is
    returned as it is (str() of one is redacted: parsing that again would lose the password)."""
    if isinstance(value, WarehouseTarget):
        return value
    env = os.environ if env is None else env
    if value is None:
        value = env.get("CRMFLOW_WAREHOUSE") or DEFAULT_DUCKDB_PATH
    text = str(value).strip()
    if "://" not in text:
        return WarehouseTarget(kind="duckdb", path=Path(text).resolve())
    scheme = text.split("://", 1)[0].lower()
    if scheme == SPARK_SCHEME:
        return _parse_spark_url(text, env)
    if scheme not in POSTGRES_SCHEMES:
        raise WarehouseConfigError(
            f"CRMFLOW_WAREHOUSE={redact_url(text)!r}: unsupported scheme {scheme!r}; use a DuckDB file path, "
            "postgresql://user[:password]@host[:port]/dbname or spark://local[2]"
        )
    return _parse_postgres_url(text, env)


def _parse_spark_url(text: str, env: Mapping[str, str]) -> WarehouseTarget:
    """spark://local[N] | spark://local[*] (a local PySpark session) or spark://host[:port] (Thrift)."""
    rest = text.split("://", 1)[1]
    folder = Path(env.get("CRMFLOW_SPARK_DIR") or DEFAULT_SPARK_DIR).resolve()
    if _SPARK_LOCAL.fullmatch(rest):
        return WarehouseTarget(kind="spark", master=rest if "[" in rest else "local[*]", path=folder)
    found = _SPARK_HOST.fullmatch(rest)
    port = int(found.group(2) or DEFAULT_SPARK_THRIFT_PORT) if found else 0
    if not found or rest.startswith("local[") or not 1 <= port <= 65535:
        raise WarehouseConfigError(
            f"CRMFLOW_WAREHOUSE={redact_url(text)!r}: not a Spark warehouse; expected spark://local[2], "
            "spark://local[*] (a local PySpark session) or spark://host:port (a Spark Thrift server)")
    return WarehouseTarget(kind="spark", host=found.group(1), port=port, path=folder)


def _parse_postgres_url(text: str, env: Mapping[str, str]) -> WarehouseTarget:
    shown = redact_url(text)

    def bad(what: str) -> WarehouseConfigError:
        return WarehouseConfigError(
            f"CRMFLOW_WAREHOUSE={shown!r}: {what}; expected postgresql://user[:password]@host[:port]/dbname"
        )

    parts = urlsplit(text)
    try:
        port = parts.port or DEFAULT_POSTGRES_PORT
    except ValueError:
        raise bad("the port is not a number from 1 to 65535") from None
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.username:
        raise bad("no user")
    if not parts.hostname:
        raise bad("no host")
    if not dbname or "/" in dbname:
        raise bad("no database name (or more than one path segment)")
    options = tuple(parse_qsl(parts.query, keep_blank_values=True))
    for key, option_value in options:
        if key not in POSTGRES_URL_OPTIONS:
            raise bad(f"unknown option {key!r} (allowed: {', '.join(POSTGRES_URL_OPTIONS)})")
        if key == "connect_timeout" and not option_value.isdigit():
            raise bad(f"connect_timeout={option_value!r} is not a whole number of seconds")
    password = unquote(parts.password) if parts.password is not None else env.get("PGPASSWORD")
    return WarehouseTarget(
        kind="postgres",
        host=parts.hostname,
        port=port,
        dbname=dbname,
        user=unquote(parts.username),
        password=password or None,
        options=options,
    )
