"""Portable SQL text: one parameter style for every backend, and identifier quoting.

Parameter style: named `$name` placeholders with a dict of values (`where user_id = $user_id`).
DuckDB takes them as they are; the PostgreSQL backend rewrites them to psycopg's `%(name)s` (and
doubles every `%`, which psycopg would otherwise read as a placeholder). Placeholders inside quoted
strings, quoted identifiers and comments are left alone. Positional parameters (`?`, `$1`) and
dollar-quoted bodies (`$tag$ ... $tag$`) are not portable SQL. A statement with parameters is one
statement; several statements in one call take no parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_TOKENS = re.compile(
    r"""
      (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?<![\w$])\$(?P<param>[A-Za-z_]\w*)(?![\w$])
    | (?P<percent>%)
    """,
    re.VERBOSE | re.DOTALL,
)
_RELATION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)?$")


@dataclass(frozen=True)
class PreparedSQL:
    sql: str
    params: dict[str, Any] | None  # None: the statement has no placeholders (run as plain text)


def parameter_names(sql: str) -> list[str]:
    """The `$name` placeholders of `sql`, in order of first use."""
    names = [m["param"] for m in _TOKENS.finditer(sql) if m["param"]]
    return list(dict.fromkeys(names))


def bind(sql: str, params: Mapping[str, Any] | None, style: str) -> PreparedSQL:
    """Check `params` covers the placeholders and rewrite the text for `style` ('duckdb'|'pyformat')."""
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(
            f"portable SQL takes named parameters ($name) and a dict of values, got {type(params).__name__}"
        )
    names = parameter_names(sql)
    if not names:
        return PreparedSQL(sql, None)
    given = dict(params or {})
    missing = [name for name in names if name not in given]
    if missing:
        raise ValueError(
            f"SQL parameter(s) {', '.join('$' + n for n in missing)} have no value; "
            f"given: {', '.join(sorted(given)) or 'none'}"
        )
    values = {name: given[name] for name in names}  # DuckDB rejects unused values; keep both alike
    if style == "duckdb":
        return PreparedSQL(sql, values)
    return PreparedSQL(_TOKENS.sub(_to_pyformat, sql), values)


def _to_pyformat(match: re.Match[str]) -> str:
    if match["param"]:
        return f"%({match['param']})s"
    return match.group(0).replace("%", "%%")


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def split_relation(relation: str) -> tuple[str | None, str]:
    """'schema.table' -> ('schema', 'table'); 'table' -> (None, 'table'). Plain identifiers only."""
    if not _RELATION.match(relation):
        raise ValueError(f"relation {relation!r} is not a table name or schema.table")
    schema, _, table = relation.rpartition(".")
    return (schema or None), table


def quote_relation(relation: str) -> str:
    schema, table = split_relation(relation)
    return (
        quote_identifier(table) if schema is None else f"{quote_identifier(schema)}.{quote_identifier(table)}"
    )


def is_relation(text: str) -> bool:
    return bool(_RELATION.match(text.strip()))


def values_in(column: str, name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`column in ($name_0, $name_1, ...)` and its parameters: a list of values in portable SQL
    (PostgreSQL has no `unnest($list)` of a DuckDB list); `false` when there are none."""
    params = {f"{name}_{i}": value for i, value in enumerate(values)}
    if not params:
        return "false", {}
    return f"{column} in ({', '.join('$' + p for p in params)})", params
