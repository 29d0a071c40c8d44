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
  exported and, on erasure, redacted in place (crmflow/privacy_files.py): the line stays (it records that a message went out)
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

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from crmflow.delivery_events import suppress
from crmflow.errors import CrmflowUserError
from crmflow.privacy_files import (
    EXPORT_SUFFIXES,
    erase_from_file,
    export_files,
    outbox_files,
    outbox_lines_of,
    redact_outbox,
    rows_of,
)
from crmflow.warehouse import Warehouse, apply_migrations, as_warehouse
from crmflow.warehouse.dialect import regexp_matches, sha256_hex
from crmflow.warehouse.sql import quote_identifier, quote_relation, values_in

__all__ = ["EXPORT_SUFFIXES", "ErasureReport", "Identifiers", "UnknownPersonError", "anonymise_staged_rows",
           "ensure_privacy_tables", "erase_person", "export_person", "identifiers"]

# Columns that identify or describe a person: nulled on erasure wherever they appear.
PERSONAL_COLUMNS = frozenset({
    "email", "phone", "push_token", "first_name", "last_name", "name", "city", "birth_date", "gender",
    "company_name", "referred_by", "address", "to", "recipient", "anonymous_id", "ip", "url", "text", "note",
    "talking_points", "context_text", "error", "raw_content", "notes",
})
# Keys dropped from event JSON (properties/context) of an erased person.
# operator_tasks.context nests the profile (first name, company) and the operator's note: the whole
# sub-objects go, as only top-level keys are removed.
PERSONAL_JSON_KEYS = ("email", "phone", "name", "first_name", "last_name", "address", "ip", "userAgent",
                      "traits", "push_token", "birthday", "profile", "note", "notes", "last_orders",
                      "company_name")
# Tables whose rows for the person are deleted outright (nothing aggregate depends on them).
DELETE_TABLES = frozenset({"raw_manual_tags"})
# Tables that must keep the person's identifiers to do their job.
KEEP_TABLES = frozenset({"suppression_list", "privacy_erasures"})
TEXT_TYPES = ("VARCHAR", "CHARACTER VARYING", "TEXT")
JSON_TYPES = ("JSON", "JSONB")


class UnknownPersonError(CrmflowUserError):
    """No row, export file or outbox line anywhere mentions the user_id asked for."""


def ensure_privacy_tables(con: Warehouse | Any) -> None:
    apply_migrations(as_warehouse(con))


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


@dataclass(frozen=True)
class Relation:
    name: str  # what reports and exports call it: the table name
    qualified: str  # schema.table
    type: str  # BASE TABLE | VIEW
    columns: dict[str, tuple[str, bool]]  # name -> (upper-case data type, nullable)


def _relations(wh: Warehouse) -> dict[str, Relation]:
    """Every table and view of the project's schemas (names starting with `_` are scratch), by name."""
    schemas = sorted(set(wh.schemas.values()) | {"public"}) if wh.dialect == "postgres" else ["main"]
    schema_in, params = values_in("c.table_schema", "schema", schemas)
    rows = wh.fetch_rows(f"""
        select c.table_schema, c.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable = 'YES'
        from information_schema.columns c
        join information_schema.tables t
          on t.table_catalog = c.table_catalog and t.table_schema = c.table_schema and t.table_name = c.table_name
        where {schema_in} and c.table_catalog = current_database() and substr(c.table_name, 1, 1) <> '_'
        order by c.table_schema, c.table_name, c.ordinal_position""", params)
    out: dict[str, Relation] = {}
    for schema, table, ttype, column, dtype, nullable in rows:
        relation = out.setdefault(table, Relation(table, f"{schema}.{table}", ttype, {}))
        if relation.qualified == f"{schema}.{table}":  # the same name in two schemas: the first one
            relation.columns[column] = (str(dtype).upper(), bool(nullable))
    return out


def _values(wh: Warehouse, sql: str, params: dict[str, Any]) -> list[str]:
    return sorted({str(r[0]) for r in wh.fetch_rows(sql, params) if r[0] is not None and str(r[0])})


def identifiers(con: Warehouse | Any, user_id: str) -> Identifiers:
    wh = as_warehouse(con)
    relations = _relations(wh)
    p = {"u": user_id}
    found: dict[str, set[str]] = {"anonymous_id": set(), "email": set(), "phone": set(), "push_token": set()}
    for relation in relations.values():
        if "user_id" not in relation.columns or relation.name in KEEP_TABLES:
            continue
        for column, values in found.items():
            if column in relation.columns:
                values.update(_values(wh, f"select {quote_identifier(column)} from {quote_relation(relation.qualified)} "
                                          "where user_id = $u", p))
    tasks = _values(wh, f"select task_id from {relations['operator_tasks'].qualified} where user_id = $u", p) \
        if "operator_tasks" in relations else []
    emails = {e.strip().lower() for e in found["email"]}
    return Identifiers(user_id, sorted(found["anonymous_id"]), sorted(emails), sorted(found["phone"]),
                       sorted(found["push_token"]), tasks)


def _match(relation: Relation, ids: Identifiers, dialect: str) -> tuple[str, dict[str, Any]]:
    """Rows of a table that are about the person: the condition and its parameters."""
    cols = relation.columns
    parts: list[str] = []
    params: dict[str, Any] = {}

    def add(sql: str, values: dict[str, Any]) -> None:
        parts.append(sql)
        params.update(values)

    if "user_id" in cols:
        add("user_id = $u", {"u": ids.user_id})
    if "anonymous_id" in cols:
        add(*values_in("anonymous_id", "anon", ids.anonymous_ids))
    if "address" in cols:
        add(*values_in("address", "addr", ids.addresses))
    if "task_id" in cols and "user_id" not in cols:
        add(*values_in("task_id", "task", ids.task_ids))
    if "raw_content" in cols:
        add(regexp_matches("raw_content", "$pattern", dialect), {"pattern": _mention_pattern(ids)})
    return " or ".join(f"({p})" for p in parts), params


def _mention_pattern(ids: Identifiers) -> str:
    # An identifier counts as mentioned only as a whole field: "u1" must not match "u10".
    escaped = "|".join(_regex_escape(x) for x in ids.all)
    return f"(^|[^A-Za-z0-9_.@+-])({escaped})($|[^A-Za-z0-9_.@+-])"


def _regex_escape(value: str) -> str:
    return "".join("\\" + ch if not ch.isalnum() else ch for ch in value)


def export_person(con: Warehouse | Any, user_id: str, as_of: datetime,
                  export_dir: Path | None = None, outbox_dir: Path | None = None) -> dict[str, Any]:
    """Everything held about `user_id`: every matching row of every table and view, the rows of
    export files (banners, tasks) that carry their user_id, and their outbox messages."""
    wh = as_warehouse(con)
    ids = identifiers(wh, user_id)
    found, files, outbox = _mentions(wh, ids, export_dir, outbox_dir)
    if not (found or files or outbox):  # a typo must not look like "we hold nothing about them"
        raise UnknownPersonError(_unknown(user_id))
    return {"user_id": user_id, "as_of": as_of.isoformat(), "identifiers": {
        "anonymous_ids": ids.anonymous_ids, "emails": ids.emails, "phones": ids.phones,
        "push_tokens": ids.push_tokens, "task_ids": ids.task_ids}, "tables": found, "export_files": files,
        "outbox": outbox}


Rows = dict[str, list[dict[str, Any]]]


def _mentions(wh: Warehouse, ids: Identifiers, export_dir: Path | None,
              outbox_dir: Path | None) -> tuple[Rows, Rows, Rows]:
    """The person's rows: by table, by export file, by outbox file (only non-empty entries)."""
    found: Rows = {}
    for name, relation in sorted(_relations(wh).items()):
        where, params = _match(relation, ids, wh.dialect)
        if not where:
            continue
        rows = wh.fetch_arrow(f"select * from {quote_relation(relation.qualified)} where {where}", params).to_pylist()
        if rows:
            found[name] = rows
    files = {str(path): rows for path in export_files(export_dir) if (rows := rows_of(path, ids.user_id))}
    outbox = {str(path): lines for path in outbox_files(outbox_dir)
              if (lines := outbox_lines_of(path, ids.user_id, ids.addresses))}
    return found, files, outbox


def _unknown(user_id: str) -> str:
    return (f"unknown user_id {user_id!r}: no table, export file or outbox mentions it "
            "(an erased person still has their suppression entries)")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _existing_pseudonym(wh: Warehouse, user_id: str) -> str | None:
    return wh.scalar("select pseudonym from privacy_erasures where identifier_sha256 = $h", {"h": _sha256(user_id)})


def erase_person(con: Warehouse | Any, user_id: str, as_of: datetime,
                 export_dir: Path | None = None, outbox_dir: Path | None = None) -> ErasureReport:
    """Erase `user_id` (idempotent): one transaction over the warehouse, then the export files and
    the outbox. An id nothing mentions (and never erased) is an UnknownPersonError."""
    wh = as_warehouse(con)
    apply_migrations(wh)
    ids = identifiers(wh, user_id)
    earlier = _existing_pseudonym(wh, user_id)
    if earlier is None and not any(_mentions(wh, ids, export_dir, outbox_dir)):
        raise UnknownPersonError(_unknown(user_id))  # nothing recorded, suppressed or rewritten
    pseudonym = earlier or f"erased-{uuid.uuid4().hex[:20]}"
    report = ErasureReport(user_id, pseudonym)
    with wh.transaction():
        for name, relation in sorted(_relations(wh).items()):
            if relation.type != "BASE TABLE" or name in KEEP_TABLES:
                continue
            where, params = _match(relation, ids, wh.dialect)
            if not where:
                continue
            target = quote_relation(relation.qualified)
            if name in DELETE_TABLES or name.startswith("quarantine_"):
                n = len(wh.fetch_rows(f"delete from {target} where {where} returning 1", params))
                if n:
                    report.rows_deleted[name] = n
                continue
            scrub = _scrub_sql(relation.columns, wh.dialect)
            if not scrub:
                continue  # matched by task_id only, nothing personal in it (operator_task_pushes)
            n = len(wh.fetch_rows(f"update {target} set {scrub} where {where} returning 1",
                                  {**params, "p": pseudonym}))
            if n:
                report.rows_pseudonymised[name] = n
        report.suppressed = _suppress(wh, ids, pseudonym, as_of)
        erased = {_sha256(ids.user_id): "user_id", **{_sha256(a): "anonymous_id" for a in ids.anonymous_ids if a}}
        erased.pop(_sha256(""), None)
        wh.insert_new_returning("privacy_erasures", pa.table({
            "identifier_sha256": pa.array(list(erased), pa.string()),
            "kind": pa.array(list(erased.values()), pa.string()),
            "pseudonym": pa.array([pseudonym] * len(erased), pa.string()),
            "erased_at": pa.array([as_of] * len(erased), pa.timestamp("us", tz="UTC")),
        }), ["identifier_sha256"])
    for path in export_files(export_dir):
        removed = erase_from_file(path, user_id)
        if removed:
            report.export_files[str(path)] = removed
    for path in outbox_files(outbox_dir):
        redacted = redact_outbox(path, ids.user_id, ids.addresses, pseudonym)
        if redacted:
            report.outbox_files[str(path)] = redacted
    return report


def _drop_json_keys(column: str, dtype: str, dialect: str) -> str:
    """`column` (JSON) without the personal top-level keys."""
    if dialect == "duckdb":
        patch = json.dumps({k: None for k in PERSONAL_JSON_KEYS})
        return f"json_merge_patch({column}, '{patch}')"
    keys = ", ".join("'" + k + "'" for k in PERSONAL_JSON_KEYS)
    dropped = f"cast({column} as jsonb) - cast(array[{keys}] as text[])"
    return dropped if dtype == "JSONB" else f"cast({dropped} as json)"


def _scrub_sql(cols: dict[str, tuple[str, bool]], dialect: str = "duckdb") -> str:
    sets = []
    if "user_id" in cols:
        sets.append("user_id = $p")
    for name, (dtype, nullable) in cols.items():
        if name not in PERSONAL_COLUMNS:
            continue
        if nullable:
            sets.append(f"{quote_identifier(name)} = null")
        elif dtype.upper().startswith(TEXT_TYPES):
            sets.append(f"{quote_identifier(name)} = 'erased'")
    for name in ("properties", "context"):
        if name in cols and cols[name][0].upper() in JSON_TYPES:
            quoted = quote_identifier(name)
            sets.append(f"{quoted} = {_drop_json_keys(quoted, cols[name][0].upper(), dialect)}")
    for name in ("email_opt_in", "sms_opt_in", "push_opt_in"):
        if name in cols:
            sets.append(f"{quote_identifier(name)} = false")  # no consent survives an erasure
    return ", ".join(sets)


def _suppress(wh: Warehouse, ids: Identifiers, pseudonym: str, as_of: datetime) -> int:
    rows = [("all", ids.user_id, ids.user_id), ("all", pseudonym, pseudonym)]
    rows += [("email", e, pseudonym) for e in ids.emails]
    rows += [("sms", p, pseudonym) for p in ids.phones]
    rows += [("push", t, pseudonym) for t in ids.push_tokens]
    added = suppress(wh, ((channel, address, uid, "erased", "privacy") for channel, address, uid in rows), as_of)
    # Suppressions recorded earlier (bounces, unsubscribes) stay, now under the pseudonym.
    wh.execute("update suppression_list set user_id = $p where user_id = $u and channel <> 'all'",
               {"p": pseudonym, "u": ids.user_id})
    return added


def anonymise_staged_rows(con: Any, staged: str = "_staged") -> None:
    """Ingestion hook, on the landing parser's in-memory DuckDB (privacy_erasures mirrored into it):
    rows of an erased person in a staged batch get the pseudonym and lose their personal fields before
    they are deduplicated and written to the raw tables."""
    exists = con.execute("select count(*) from information_schema.tables where table_name = 'privacy_erasures' "
                         "and table_schema = current_schema()").fetchone()[0]
    if not exists or not con.execute("select count(*) from privacy_erasures").fetchone()[0]:
        return
    cols = {name: (dtype, True) for name, dtype in
            con.execute(f"select column_name, column_type from (describe {staged})").fetchall()}
    if "user_id" not in cols:
        return
    scrub = _scrub_sql({k: v for k, v in cols.items() if k != "raw_content"}).replace("$p", "e.pseudonym")
    anon = f", {sha256_hex('s.anonymous_id', 'duckdb')}" if "anonymous_id" in cols else ""
    con.execute(f"""update {staged} s set {scrub} from privacy_erasures e
        where s.reason is null and e.identifier_sha256 in ({sha256_hex('s.user_id', 'duckdb')}{anon})""")
