"""SQL pieces that differ between the engines, chosen by `warehouse.dialect` ("duckdb" | "postgres").

Portable SQL is the rule (docs/architecture.md, "Warehouse backends"); a function lands here only when
no form runs unchanged on both engines. Each takes the dialect (or the warehouse) and returns SQL text.
"""

from __future__ import annotations


# -- intelligence (features) -----------------------------------------------------------------------


def epoch_us(expr: str, dialect: str) -> str:
    """Microseconds since the epoch of a timestamptz, as bigint (exact on both engines)."""
    if dialect == "duckdb":
        return f"epoch_us({expr})"
    return f"cast(extract(epoch from {expr}) * 1000000 as bigint)"  # numeric extract: exact


def floor_div(dividend: str, divisor: str, dialect: str) -> str:
    """Integer division of non-negative integers (DuckDB `/` on integers gives a double)."""
    if dialect == "duckdb":
        return f"(({dividend}) // ({divisor}))"
    return f"(({dividend}) / ({divisor}))"


def binary_order(expr: str, dialect: str) -> str:
    """Order text by code point whatever the database collation (DuckDB's default is binary)."""
    if dialect == "duckdb":
        return expr
    return f'({expr}) collate "C"'


# -- dispatch, delivery events, privacy ------------------------------------------------------------


def sha256_hex(expr: str, dialect: str) -> str:
    """Lower-case hex SHA-256 of a text expression (the same string on both engines)."""
    if dialect == "duckdb":
        return f"sha256({expr})"
    return f"encode(sha256(convert_to({expr}, 'UTF8')), 'hex')"


def skip_locked(dialect: str, table_alias: str) -> str:
    """Row locks for a claim: PostgreSQL workers skip rows another worker is claiming right now
    (`for update of <alias> skip locked`); DuckDB has one writer process per file (and the OS lock)."""
    if dialect == "duckdb":
        return ""
    return f" for update of {table_alias} skip locked"


def regexp_matches(expr: str, pattern: str, dialect: str) -> str:
    """True where the text matches the regular expression (POSIX-style on PostgreSQL, RE2 on DuckDB:
    use only what both read the same: classes, alternation, anchors, backslash escapes)."""
    if dialect == "duckdb":
        return f"regexp_matches({expr}, {pattern})"
    return f"({expr}) ~ ({pattern})"


# -- banners and tasks -------------------------------------------------------------------------------


def temp_schema(dialect: str) -> str:
    """The schema that names this session's temp tables (`drop table if exists <it>.x` never hits a real one)."""
    return "temp" if dialect == "duckdb" else "pg_temp"


def hex_to_bigint(hex_expr: str, dialect: str) -> str:
    """A text of at most 15 hex digits (e.g. substr(md5(x), 1, 8)) as a non-negative bigint."""
    if dialect == "duckdb":
        return f"cast(cast('0x' || {hex_expr} as ubigint) as bigint)"
    return f"cast(cast('x' || lpad({hex_expr}, 16, '0') as bit(64)) as bigint)"


def utc_iso_text(expr: str, dialect: str) -> str:
    """A timestamptz as 'YYYY-MM-DDTHH:MM:SSZ' in UTC (the push payloads' format); null stays null."""
    if dialect == "duckdb":
        return f"strftime(timezone('UTC', {expr}), '%Y-%m-%dT%H:%M:%SZ')"
    return f"""to_char(({expr}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"""


def try_cast_double(expr: str, dialect: str) -> str:
    """`expr` (text) as double precision, null when it is not a number."""
    if dialect == "duckdb":
        return f"try_cast({expr} as double)"
    return (f"case when {expr} ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$' "
            f"then cast({expr} as double precision) end")


def json_object(pairs: str, dialect: str) -> str:
    """A JSON object from `'key', value, ...` (DuckDB json_object, PostgreSQL json_build_object)."""
    return f"json_object({pairs})" if dialect == "duckdb" else f"json_build_object({pairs})"


def json_array_agg(expr: str, order_by: str, dialect: str) -> str:
    """A JSON array of `expr` over the group, in `order_by` order."""
    if dialect == "duckdb":
        return f"to_json(list({expr} order by {order_by}))"
    return f"json_agg({expr} order by {order_by})"


def json_parse(text_expr: str, dialect: str) -> str:
    """JSON text as a JSON value (to nest it in json_object)."""
    return f"json({text_expr})" if dialect == "duckdb" else f"cast({text_expr} as json)"


# -- measurement ------------------------------------------------------------------------------------


def round_double(expr: str, digits: int, dialect: str) -> str:
    """A double rounded to `digits` decimals, as a double (PostgreSQL rounds only numeric)."""
    if dialect == "duckdb":
        return f"round({expr}, {int(digits)})"
    return f"cast(round(cast({expr} as numeric), {int(digits)}) as double precision)"
