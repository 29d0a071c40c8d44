"""SQL building blocks shared by the per-source validation: decoding, JSON and CSV parsing.

Every block reads a relation of raw lines/records (file_id, line_number, line blob) and returns one
row per non-blank line with `raw_content` (what goes to quarantine), `pre_reason`/`pre_field` (a
structural failure, checked before any field rule) and the contract fields as trimmed text (NULL
when missing or empty). Blank lines are dropped here: they are not rows.
"""

from __future__ import annotations

# ISO-8601 date-time; the offset is optional here (ISO_TS_WITH_OFFSET_RE below where the contract requires it).
ISO_TS_RE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$"
# The same with the offset required (one regex instead of ISO_TS_RE plus a check for a final offset).
ISO_TS_WITH_OFFSET_RE = ISO_TS_RE[: -len(")?$")] + ")$"
DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
EMAIL_RE = r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$"
E164_RE = r"^\+[1-9][0-9]{6,14}$"
INT_RE = r"^[0-9]+(\.0+)?$"
# One CSV field after a leading comma: quoted ("" escapes a quote; newlines allowed) or bare.
CSV_FIELD_RE = r',("(?:[^"]|"")*"|[^,"]*)'
# The same field without a capture group: RE2 finds the matches without sub-match tracking (2x faster).
CSV_FIELD_MATCH_RE = r',(?:"(?:[^"]|"")*"|[^,"]*)'
TRUE_WORDS = ("true", "t", "1", "yes", "y")
FALSE_WORDS = ("false", "f", "0", "no", "n")


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    return "(" + ", ".join(sql_str(v) for v in values) + ")"


# Control characters a text value must not hold (docs/data-contracts.md): C0 except tab, line feed
# and carriage return, and DEL. They break terminals, CSV exports and PostgreSQL (no NUL in text).
CONTROL_RE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# The same characters written as JSON escapes (\b, \f, \u0000-\u0008, \u000b, \u000c,
# \u000e-\u001f, \u007f), not preceded by an escaping backslash (`\\b` is a backslash and a b).
JSON_CONTROL_ESCAPE_RE = r"(^|[^\\])(\\\\)*\\(b|f|u000[0-8bBcCeEfF]|u001[0-9a-fA-F]|u007[fF])"
# JSON types an id may have: a string or a number (never an array, object or boolean).
ID_JSON_TYPES = ("VARCHAR", "BIGINT", "UBIGINT", "DOUBLE")


def decoded_sql(lines: str) -> str:
    """Decode UTF-8 (NULL when invalid) without the line's final newline; drop blank lines.

    raw_content keeps undecodable lines visible as hex, so nothing is lost; a too-large line (NULL
    line, see landing_reader) keeps its first bytes. (Slicing the blob and a regex for blank lines
    are much cheaper than rtrim/trim over every line.) Pure-ASCII lines (the `ascii` flag from
    landing_reader) are decoded without try(): see _table there.
    """
    return f"""
    select file_id, line_number, text, problem, ctrl,
           case when line is null then coalesce(try(decode(preview)), 'hex:' || hex(preview))
                when text is null then 'hex:' || hex(line[:-2])
                -- PostgreSQL text cannot hold NUL: such a line is kept as hex (only flagged lines look)
                when ctrl and contains(text, chr(0)) then 'hex:' || hex(line[:-2])
                else text end as raw_content
    from (select file_id, line_number, line, problem, preview, ctrl,
                 case when ascii then decode(line[:-2]) else try(decode(line[:-2])) end as text
          from {lines})
    where text is null or not regexp_full_match(text, '[ \\t\\r]*')
    """


def control_field_sql(fields: tuple[str, ...], json_fields: tuple[str, ...] = ()) -> str:
    """The first of `fields`, then of `json_fields`, holding a control character (in a JSON field:
    raw or as an escape; PostgreSQL's jsonb cannot store \u0000), only on lines the reader flagged
    (`ctrl`): the regex never runs on the clean majority (CASE evaluates a branch only for its rows)."""
    whens = [f"when regexp_matches(\"{_ident(f)}\", {sql_str(CONTROL_RE)}) then {sql_str(f)}" for f in fields]
    json_control = sql_str(f"{CONTROL_RE}|{JSON_CONTROL_ESCAPE_RE}")
    whens += [f"when regexp_matches(\"{_ident(f)}\"::varchar, {json_control}) then {sql_str(f)}"
              for f in json_fields]
    return f"case when ctrl then case {' '.join(whens)} end end"


def _bad_id_field_sql(id_fields: tuple[str, ...]) -> str:
    """The first id field whose JSON value is an array, object or boolean. json_transform gave such
    a value as its JSON text, so only a value that looks like one (starts with [ or {, or is
    true/false) pays a second look at the line's JSON type."""
    if not id_fields:
        return "null::varchar"
    looks = " or ".join(f"(starts_with(\"{f}\", '[') or starts_with(\"{f}\", '{{') or \"{f}\" in ('true', 'false'))"
                        for f in map(_ident, id_fields))
    whens = " ".join(
        f"when json_type(text, '$.{f}') not in {sql_list(ID_JSON_TYPES)} then {sql_str(f)}" for f in id_fields)
    return f"case when {looks} then case {whens} end end"


def jsonl_fields_sql(lines: str, fields: tuple[str, ...], json_fields: tuple[str, ...] = (),
                     id_fields: tuple[str, ...] = ()) -> str:
    """JSON lines: one object per line; each field as trimmed text (nested values as JSON text).

    `json_fields` keep their JSON encoding (a string stays quoted) so their JSON type can be checked.
    `id_fields` must be JSON strings or numbers (invalid_id). No field may hold a control
    character (control_character): text fields decoded, JSON fields raw or as an escape.
    """
    structure = "{" + ", ".join(
        f'"{_ident(f)}": "{"JSON" if f in json_fields else "VARCHAR"}"' for f in fields + json_fields
    ) + "}"
    picks = ",\n".join(
        [f'nullif(trim(obj."{f}"), \'\') as "{f}"' for f in fields]
        + [f'obj."{f}" as "{f}"' for f in json_fields]  # JSON type, minified: no re-parse downstream
    )
    return f"""
    select * exclude (text, jtype, problem, ctrl, bad_id, bad_control),
           case when problem is not null then problem
                when text is null then 'invalid_utf8'
                when jtype is null then 'unparseable_json'
                when jtype <> 'OBJECT' then 'not_an_object'
                when bad_id is not null then 'invalid_id'
                when bad_control is not null then 'control_character' end as pre_reason,
           coalesce(bad_id, bad_control) as pre_field
    from (
    select *, {_bad_id_field_sql(id_fields)} as bad_id, {control_field_sql(fields, json_fields)} as bad_control
    from (
    select file_id, line_number, raw_content, text, jtype, problem, ctrl,
           {picks}
    from (
        select *, case when jtype = 'OBJECT' then json_transform(text, {sql_str(structure)}) end as obj
        -- json_valid first, not try(json_type): try() re-runs a whole vector row by row when one
        -- value in it fails (a few bad lines per vector made it 3x slower). Valid JSON starting with
        -- an opening brace is an object, so only the other lines pay a second parse for json_type.
        from (select *, case when json_valid(text) then
                                 case when regexp_matches(text, '^[ \\t\\r\\n]*[{{]') then 'OBJECT'
                                      else json_type(text) end end as jtype
              from ({decoded_sql(lines)}))
    )))
    """


def csv_fields_sql(records: str, fields: tuple[str, ...]) -> str:
    """CSV records: the first non-blank record of each file is its header (matched by name,
    case-insensitive; unknown columns are ignored, missing ones read as NULL).

    The header is parsed from one record per file and each field's position is resolved once per
    file (it was a list_position per field per row, and the parsed rows were materialised twice:
    once for the headers and once for the join).
    """
    positions = ",\n".join(
        f"list_position(header, {sql_str(f)}) as \"_pos_{_ident(f)}\"" for f in fields
    )
    picks = ",\n".join(
        f"nullif(trim(r.cells[h.\"_pos_{_ident(f)}\"]), '') as \"{_ident(f)}\"" for f in fields
    )
    return f"""
    with decoded as (
        select file_id, line_number, raw_content, rtrim(text, chr(13)) as text, problem, ctrl
        from ({decoded_sql(records)})
    ), firsts as (
        -- the struct keeps an undecodable first record (NULL text): its file has no header
        select file_id, min(line_number) as header_line, arg_min({{'text': text}}, line_number).text as text
        from decoded group by file_id
    ), headers as (
        select file_id, header_line, header, len(header) as width,
               {positions}
        from (select file_id, header_line,
                     case when well_formed then list_transform(cells, lambda c: lower(trim(c))) end as header
              from ({_csv_parse_sql("firsts")}))
    ), parsed as (
        select * from ({_csv_parse_sql("decoded")})
    )
    select * exclude (text, problem, ctrl, well_formed, width, cell_count, bad_control),
           case when problem is not null then problem
                when text is null then 'invalid_utf8'
                when width is null then 'invalid_header'
                when not well_formed then 'malformed_csv'
                when cell_count <> width then 'wrong_column_count'
                when bad_control is not null then 'control_character' end as pre_reason,
           bad_control as pre_field
    from (
    select *, {control_field_sql(fields)} as bad_control
    from (
    select r.file_id, r.line_number, r.raw_content, r.text, r.problem, r.ctrl, r.well_formed,
           len(r.cells) as cell_count, h.width,
           {picks}
    from parsed r join headers h on r.file_id = h.file_id and r.line_number > h.header_line
    ))
    """


def _csv_parse_sql(relation: str) -> str:
    """Each row of `relation` (with a `text` column) plus well_formed and its cells (unquoted).

    Well formed = the field matches (each a comma + the field) tile the whole line: one regex pass
    instead of a full match plus an extract (the matches are the same).
    """
    return f"""
    select * exclude (matches),
           coalesce(list_sum(list_transform(matches, lambda m: length(m))), 0) = length(text) + 1 as well_formed,
           list_transform(matches,
               lambda m: case when starts_with(m, ',"') then replace(m[3:-2], '""', '"') else m[2:] end) as cells
    from (select *, regexp_extract_all(',' || text, {sql_str(CSV_FIELD_MATCH_RE)}, 0) as matches from {relation})
    """


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain column name: {name!r}")
    return name


def ts_ok(expr: str, require_offset: bool) -> str:
    """True when `expr` is an ISO-8601 timestamp DuckDB can read (with an offset if required)."""
    pattern = ISO_TS_WITH_OFFSET_RE if require_offset else ISO_TS_RE
    return (f"(regexp_full_match({expr}, {sql_str(pattern)})"
            f" and try_cast({expr} as timestamptz) is not null)")


def ts_in_range(expr: str, latest: str = "latest") -> str:
    """True when `expr` lies within the accepted range; `latest` is the upper-bound column of the
    _accepted_times temp table (time_range.py): "latest", or "latest_event" (as-of + clock skew)."""
    return (f"(try_cast({expr} as timestamptz) between (select earliest from _accepted_times)"
            f" and (select {_ident(latest)} from _accepted_times))")


def bool_ok(expr: str) -> str:
    return f"({expr} is null or lower({expr}) in {sql_list(TRUE_WORDS + FALSE_WORDS)})"


def bool_value(expr: str) -> str:
    """Missing opt-ins read as false: no consent unless it was given."""
    return f"coalesce(lower({expr}) in {sql_list(TRUE_WORDS)}, false)"


def date_ok(expr: str) -> str:
    return f"({expr} is null or (regexp_full_match({expr}, {sql_str(DATE_RE)}) and try_cast({expr} as date) is not null))"
