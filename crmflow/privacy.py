"""Data-subject requests: export everything held about a person, or erase it.

Tables are discovered, not listed: every relation in the warehouse with a `user_id` column holds
rows about a person (raw tables, marts, ledger, enrolments, delivery events, tags, banner
assignments, tasks, model outputs...). Special cases, documented in docs/reliability.md:
- events recorded before the person identified themselves carry only an `anonymous_id`: the
  person's anonymous ids (from their own events and identity_map) are matched too;
- quarantine tables have no user_id, only the rejected line (`raw_content`): a row "mentions" the
  person when the line contains one of their identifiers (user id, anonymous ids, emails, phones);
- tables with an `address` column (suppression_list, delivery_events) match the person's addresses;
- tables with a `task_id` but no `user_id` (task_outcomes, with the operator's free-text notes) match
  through the person's operator_tasks;
- outbox files (<outbox>/<channel>.jsonl, the offline "provider": address and rendered message) are
  exported and, on erasure, redacted in place: the line stays (it records that a message went out)
  with the pseudonym as user_id and without address, text or metadata.

Erasure pseudonymises rather than deletes where aggregates depend on the rows: the user_id becomes a
random pseudonym and every personal column is nulled, so orders, revenue, registrations and
cohort KPIs do not change. Rows that are nothing but personal data (quarantined lines, manual
tags) are deleted, export files drop the person's rows, and the person's user id, pseudonym and
addresses go on the suppression list (channel 'all' / per channel, reason 'erased'). The hashed
identifiers are recorded in privacy_erasures; ingestion anonymises re-delivered rows of an erased
person through `anonymise_staged_rows` before they reach the raw tables, so a later pipeline run
(dbt rebuilds the marts from raw) cannot bring the data back.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from crmflow.errors import CrmflowUserError
from crmflow.warehouse import ensure_ops_tables, transaction

PRIVACY_DDL = """
create table if not exists privacy_erasures (
    identifier_sha256 varchar primary key, -- sha256 of an erased user_id or anonymous_id (not the id itself)
    kind varchar not null,                 -- user_id | anonymous_id
    pseudonym varchar not null,            -- what the person's rows carry as user_id from now on
    erased_at timestamptz not null
);
"""

# Columns that identify or describe a person: nulled on erasure wherever they appear.
PERSONAL_COLUMNS = frozenset({
    "email", "phone", "push_token", "first_name", "last_name", "name", "city", "birth_date", "gender",
    "company_name", "referred_by", "address", "to", "recipient", "anonymous_id", "ip", "url", "text", "note",
    "talking_points", "context_text", "error", "raw_content", "notes",
})
# Keys dropped from event JSON (properties/context) of an erased person.
# operator_tasks.context nests the profile (first name, company) and the operator's note: the whole
# sub-objects go, as json_merge_patch works on top-level keys only.
PERSONAL_JSON_KEYS = ("email", "phone", "name", "first_name", "last_name", "address", "ip", "userAgent",
                      "traits", "push_token", "birthday", "profile", "note", "notes", "last_orders",
                      "company_name")
# Tables whose rows for the person are deleted outright (nothing aggregate depends on them).
DELETE_TABLES = frozenset({"raw_manual_tags"})
# Tables that must keep the person's identifiers to do their job.
KEEP_TABLES = frozenset({"suppression_list", "privacy_erasures"})
EXPORT_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class UnknownPersonError(CrmflowUserError):
    """No row, export file or outbox line anywhere mentions the user_id asked for."""


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(PRIVACY_DDL)


@dataclass(frozen=True)
class Identifiers:
    user_id: str
    anonymous_ids: list[str]
    emails: list[str]
    phones: list[str]
    push_tokens: list[str]
    task_ids: list[str] = field(default_factory=list)  # their operator_tasks (task_outcomes has no user_id)

    @property
    def addresses(self) -> list[str]:
        return sorted({*self.emails, *self.phones, *self.push_tokens})

    @property
    def all(self) -> list[str]:
        return sorted({self.user_id, *self.anonymous_ids, *self.addresses, *self.task_ids})


@dataclass
class ErasureReport:
    user_id: str
    pseudonym: str
    rows_pseudonymised: dict[str, int] = field(default_factory=dict)
    rows_deleted: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    export_files: dict[str, int] = field(default_factory=dict)  # file -> rows removed
    outbox_files: dict[str, int] = field(default_factory=dict)  # file -> lines redacted

    def as_dict(self) -> dict[str, Any]:
        return {"pseudonym": self.pseudonym, "rows_pseudonymised": self.rows_pseudonymised,
                "rows_deleted": self.rows_deleted, "suppression_entries_added": self.suppressed,
                "export_files": self.export_files, "outbox_files": self.outbox_files}


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """table -> {"type": BASE TABLE|VIEW, "columns": {name: (data_type, nullable)}} in the current schema."""
    rows = con.execute("""
        select c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable = 'YES'
        from information_schema.columns c
        join information_schema.tables t using (table_catalog, table_schema, table_name)
        where c.table_schema = current_schema() and c.table_catalog = current_database()
          and not starts_with(c.table_name, '_')
        order by c.table_name, c.ordinal_position""").fetchall()
    out: dict[str, dict[str, Any]] = {}
    for table, ttype, column, dtype, nullable in rows:
        entry = out.setdefault(table, {"type": ttype, "columns": {}})
        entry["columns"][column] = (dtype, nullable)
    return out


def _list(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[str]:
    return sorted({str(r[0]) for r in con.execute(sql, params).fetchall() if r[0] is not None and str(r[0])})


def identifiers(con: duckdb.DuckDBPyConnection, user_id: str) -> Identifiers:
    tables = _columns(con)
    p = {"u": user_id}
    anon: set[str] = set()
    emails: set[str] = set()
    phones: set[str] = set()
    tokens: set[str] = set()
    for table, entry in tables.items():
        cols = entry["columns"]
        if "user_id" not in cols or table in KEEP_TABLES:
            continue
        if "anonymous_id" in cols:
            anon.update(_list(con, f'select anonymous_id from "{table}" where user_id = $u', p))
        if "email" in cols:
            emails.update(e.strip().lower() for e in _list(con, f'select email from "{table}" where user_id = $u', p))
        if "phone" in cols:
            phones.update(_list(con, f'select phone from "{table}" where user_id = $u', p))
        if "push_token" in cols:
            tokens.update(_list(con, f'select push_token from "{table}" where user_id = $u', p))
    tasks = _list(con, "select task_id from operator_tasks where user_id = $u", p) \
        if "operator_tasks" in tables else []
    return Identifiers(user_id, sorted(anon), sorted(emails), sorted(phones), sorted(tokens), tasks)


def _match_sql(cols: dict[str, Any]) -> str:
    """Rows of a table that are about the person (parameters $u, $anon, $addr, $pattern)."""
    parts = []
    if "user_id" in cols:
        parts.append("user_id = $u")
    if "anonymous_id" in cols:
        parts.append("anonymous_id in (select unnest($anon))")
    if "address" in cols:
        parts.append("address in (select unnest($addr))")
    if "task_id" in cols and "user_id" not in cols:
        parts.append("task_id in (select unnest($tasks))")
    if "raw_content" in cols:
        parts.append("regexp_matches(raw_content, $pattern)")
    return " or ".join(f"({p})" for p in parts)


def _params(ids: Identifiers) -> dict[str, Any]:
    # An identifier counts as mentioned only as a whole field: "u1" must not match "u10".
    escaped = "|".join(_regex_escape(x) for x in ids.all)
    return {"u": ids.user_id, "anon": ids.anonymous_ids or [""], "addr": ids.addresses or [""],
            "tasks": ids.task_ids or [""], "pattern": f"(^|[^A-Za-z0-9_.@+-])({escaped})($|[^A-Za-z0-9_.@+-])"}


def _regex_escape(value: str) -> str:
    return "".join("\\" + ch if not ch.isalnum() else ch for ch in value)


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """Execute with only the named parameters the statement uses (DuckDB rejects extra ones)."""
    used = set(re.findall(r"\$(\w+)", sql))
    return con.execute(sql, {k: v for k, v in params.items() if k in used})


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = _run(con, sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def export_person(con: duckdb.DuckDBPyConnection, user_id: str, as_of: datetime,
                  export_dir: Path | None = None, outbox_dir: Path | None = None) -> dict[str, Any]:
    """Everything held about `user_id`: every matching row of every table and view, the rows of
    export files (banners, tasks) that carry their user_id, and their outbox messages."""
    ids = identifiers(con, user_id)
    found, files, outbox = _mentions(con, ids, export_dir, outbox_dir)
    if not (found or files or outbox):  # a typo must not look like "we hold nothing about them"
        raise UnknownPersonError(_unknown(user_id))
    return {"user_id": user_id, "as_of": as_of.isoformat(), "identifiers": {
        "anonymous_ids": ids.anonymous_ids, "emails": ids.emails, "phones": ids.phones,
        "push_tokens": ids.push_tokens, "task_ids": ids.task_ids}, "tables": found, "export_files": files,
        "outbox": outbox}


Rows = dict[str, list[dict[str, Any]]]


def _mentions(con: duckdb.DuckDBPyConnection, ids: Identifiers, export_dir: Path | None,
              outbox_dir: Path | None) -> tuple[Rows, Rows, Rows]:
    """The person's rows: by table, by export file, by outbox file (only non-empty entries)."""
    params = _params(ids)
    found: Rows = {}
    for table, entry in sorted(_columns(con).items()):
        where = _match_sql(entry["columns"])
        if not where:
            continue
        rows = _fetch(con, f'select * from "{table}" where {where}', params)
        if rows:
            found[table] = rows
    files: Rows = {}
    for path in _export_files(export_dir):
        rows = _fetch(con, f"select * from {_reader(path)} where cast(user_id as varchar) = $u",
                      {"u": ids.user_id}) if _has_user_id(con, path) else []
        if rows:
            files[str(path)] = rows
    outbox: Rows = {}
    for path in _outbox_files(outbox_dir):
        lines = con.execute(f"select json from {_lines(path)} where {_OUTBOX_MATCH}",
                            {"u": ids.user_id, "addr": ids.addresses or [""]}).fetchall()
        if lines:
            outbox[str(path)] = [json.loads(line) for (line,) in lines]
    return found, files, outbox


def _unknown(user_id: str) -> str:
    return (f"unknown user_id {user_id!r}: no table, export file or outbox mentions it "
            "(an erased person still has their suppression entries)")


# Outbox lines (OutboundMessage as JSON) about the person: theirs by user_id, or sent to their address.
_OUTBOX_MATCH = "(json ->> 'user_id' = $u or json ->> 'to' in (select unnest($addr)))"
# What an erased person's outbox line keeps: message_key, channel, journey/step, variant, locale.
_OUTBOX_REDACT = ("to", "subject", "body", "html", "title", "deep_link", "metadata")


def _outbox_files(outbox_dir: Path | None) -> list[Path]:
    if outbox_dir is None or not Path(outbox_dir).is_dir():
        return []
    return sorted(p for p in Path(outbox_dir).rglob("*.jsonl") if p.is_file() and not p.name.startswith("."))


def _lines(path: Path) -> str:
    """Each JSON line as text, untouched (read_json would re-shape heterogeneous metadata)."""
    literal = "'" + str(path).replace("'", "''") + "'"
    return f"read_json_objects({literal}, format = 'newline_delimited')"


def _redact_outbox(con: duckdb.DuckDBPyConnection, path: Path, ids: Identifiers, pseudonym: str) -> int:
    """Rewrite an outbox file with the person's lines redacted (others byte-for-byte the same);
    atomically: temp file + rename."""
    params = {"u": ids.user_id, "addr": ids.addresses or [""]}
    hits = con.execute(f"select count(*) from {_lines(path)} where {_OUTBOX_MATCH}", params).fetchall()[0][0]
    if not hits:
        return 0
    # json_merge_patch: a null value removes the key; user_id becomes the pseudonym.
    patch = ", ".join(f"'{k}', null" for k in _OUTBOX_REDACT)
    column = con.sql(f"""select case when {_OUTBOX_MATCH}
                              then json_merge_patch(json, json_object({patch}, 'user_id', $p))::varchar
                              else json::varchar end
                         from {_lines(path)}""", params={**params, "p": pseudonym}).to_arrow_table().column(0)
    tmp = path.with_name(f".{path.name}.erase.tmp")
    tmp.write_text("\n".join(column.to_pylist()) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return int(hits)


def _export_files(export_dir: Path | None) -> list[Path]:
    if export_dir is None or not Path(export_dir).is_dir():
        return []
    return sorted(p for p in Path(export_dir).rglob("*")
                  if p.is_file() and p.suffix in EXPORT_SUFFIXES and not p.name.startswith("."))


def _reader(path: Path) -> str:
    literal = "'" + str(path).replace("'", "''") + "'"
    if path.suffix == ".parquet":
        return f"read_parquet({literal})"
    if path.suffix == ".csv":
        return f"read_csv({literal}, header = true, all_varchar = true)"
    return f"read_json({literal}, format = 'newline_delimited')" if path.suffix == ".jsonl" \
        else f"read_json({literal})"


def _has_user_id(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    try:
        names = [d[0] for d in con.execute(f"select * from {_reader(path)} limit 0").description]
    except duckdb.Error:
        return False  # empty or not tabular: nothing about a person in it
    return "user_id" in names


def _existing_pseudonym(con: duckdb.DuckDBPyConnection, user_id: str) -> str | None:
    row = con.execute("select pseudonym from privacy_erasures where identifier_sha256 = sha256($u)",
                      {"u": user_id}).fetchone()
    return row[0] if row else None


def erase_person(con: duckdb.DuckDBPyConnection, user_id: str, as_of: datetime,
                 export_dir: Path | None = None, outbox_dir: Path | None = None) -> ErasureReport:
    """Erase `user_id` (idempotent): one transaction over the warehouse, then the export files and
    the outbox. An id nothing mentions (and never erased) is an UnknownPersonError."""
    ensure_ops_tables(con)
    ensure_privacy_tables(con)
    ids = identifiers(con, user_id)
    earlier = _existing_pseudonym(con, user_id)
    if earlier is None and not any(_mentions(con, ids, export_dir, outbox_dir)):
        raise UnknownPersonError(_unknown(user_id))  # nothing recorded, suppressed or rewritten
    pseudonym = earlier or f"erased-{uuid.uuid4().hex[:20]}"
    report = ErasureReport(user_id, pseudonym)
    params = {**_params(ids), "p": pseudonym, "as_of": as_of}
    with transaction(con):
        for table, entry in sorted(_columns(con).items()):
            if entry["type"] != "BASE TABLE" or table in KEEP_TABLES:
                continue
            cols = entry["columns"]
            where = _match_sql(cols)
            if not where:
                continue
            if table in DELETE_TABLES or table.startswith("quarantine_"):
                n = _run(con, f'delete from "{table}" where {where} returning 1', params).fetchall()
                if n:
                    report.rows_deleted[table] = len(n)
                continue
            scrub = _scrub_sql(cols)
            if not scrub:
                continue  # matched by task_id only, nothing personal in it (operator_task_pushes)
            sql = f'update "{table}" set {scrub} where {where} returning 1'
            n = _run(con, sql, params).fetchall()
            if n:
                report.rows_pseudonymised[table] = len(n)
        report.suppressed = _suppress(con, ids, pseudonym, as_of)
        _run(con, """insert into privacy_erasures
            select sha256(id), kind, $p, $as_of from (
                select $u as id, 'user_id' as kind union all select unnest($anon), 'anonymous_id')
            where id <> '' on conflict do nothing""", params)
    for path in _export_files(export_dir):
        removed = _erase_from_file(con, path, user_id)
        if removed:
            report.export_files[str(path)] = removed
    for path in _outbox_files(outbox_dir):
        redacted = _redact_outbox(con, path, ids, pseudonym)
        if redacted:
            report.outbox_files[str(path)] = redacted
    return report


def _scrub_sql(cols: dict[str, tuple[str, bool]]) -> str:
    sets = []
    if "user_id" in cols:
        sets.append("user_id = $p")
    for name, (dtype, nullable) in cols.items():
        if name not in PERSONAL_COLUMNS:
            continue
        if nullable:
            sets.append(f'"{name}" = null')
        elif dtype.upper().startswith("VARCHAR"):
            sets.append(f"\"{name}\" = 'erased'")
    for name in ("properties", "context"):
        if name in cols and cols[name][0].upper() == "JSON":
            patch = json.dumps({k: None for k in PERSONAL_JSON_KEYS})
            sets.append(f"\"{name}\" = json_merge_patch(\"{name}\", '{patch}')")
    for name in ("email_opt_in", "sms_opt_in", "push_opt_in"):
        if name in cols:
            sets.append(f'"{name}" = false')  # no consent survives an erasure
    return ", ".join(sets)


def _suppress(con: duckdb.DuckDBPyConnection, ids: Identifiers, pseudonym: str, as_of: datetime) -> int:
    rows = [("all", ids.user_id, ids.user_id), ("all", pseudonym, pseudonym)]
    rows += [("email", e, pseudonym) for e in ids.emails]
    rows += [("sms", p, pseudonym) for p in ids.phones]
    rows += [("push", t, pseudonym) for t in ids.push_tokens]
    added = 0
    for channel, address, uid in rows:
        added += len(con.execute(
            "insert into suppression_list values (?, ?, ?, 'erased', 'privacy', ?) on conflict do nothing "
            "returning 1", [channel, address, uid, as_of]).fetchall())
    # Suppressions recorded earlier (bounces, unsubscribes) stay, now under the pseudonym.
    con.execute("update suppression_list set user_id = ? where user_id = ? and channel <> 'all'",
                [pseudonym, ids.user_id])
    return added


def _erase_from_file(con: duckdb.DuckDBPyConnection, path: Path, user_id: str) -> int:
    """Rewrite an export file without the person's rows (atomically: temp file + rename)."""
    if not _has_user_id(con, path):
        return 0
    source = _reader(path)
    removed = con.execute(f"select count(*) from {source} where cast(user_id as varchar) = $u",
                          {"u": user_id}).fetchone()[0]
    if not removed:
        return 0
    tmp = path.with_name(f".{path.name}.erase.tmp")
    fmt = {".parquet": "format parquet", ".csv": "format csv, header true"}.get(path.suffix, "format json")
    if path.suffix == ".json":
        fmt = "format json, array true"
    literal = "'" + str(tmp).replace("'", "''") + "'"
    con.execute(f"copy (select * from {source} where cast(user_id as varchar) is distinct from $u) "
                f"to {literal} ({fmt})", {"u": user_id})
    os.replace(tmp, path)
    return int(removed)


def anonymise_staged_rows(con: duckdb.DuckDBPyConnection, staged: str = "_staged") -> None:
    """Ingestion hook: rows of an erased person in a staged batch get the pseudonym and lose their
    personal fields before they are deduplicated and written to the raw tables."""
    exists = con.execute("select count(*) from information_schema.tables where table_name = 'privacy_erasures' "
                         "and table_schema = current_schema()").fetchone()[0]
    if not exists or not con.execute("select count(*) from privacy_erasures").fetchone()[0]:
        return
    cols = {name: (dtype, True) for name, dtype in
            con.execute(f"select column_name, column_type from (describe {staged})").fetchall()}
    if "user_id" not in cols:
        return
    scrub = _scrub_sql({k: v for k, v in cols.items() if k != "raw_content"}).replace("$p", "e.pseudonym")
    anon = ", sha256(s.anonymous_id)" if "anonymous_id" in cols else ""
    con.execute(f"""update {staged} s set {scrub} from privacy_erasures e
        where s.reason is null and e.identifier_sha256 in (sha256(s.user_id){anon})""")
