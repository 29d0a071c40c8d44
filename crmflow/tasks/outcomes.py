"""Task outcomes from <landing>/task_outcomes/*.csv into task_outcomes; task status follows.

CSV header: task_id,outcome,handled_at,handling_seconds,operator_id,notes (operator_id and notes
optional). outcome: done | no_answer | converted. Each file is loaded once per content hash. Bad
rows go to quarantine_task_outcomes with the file, line, field and reason; nothing is dropped
silently. A task's status becomes its latest outcome (by handled_at; at the same handled_at, the
line loaded last).

On any warehouse (DuckDB or PostgreSQL): each file's rows are checked field by field in the landing
parser's in-memory DuckDB (connectors/sources/landing_parser.py: casts, UTF-8), then staged in the
warehouse, where portable SQL checks them against operator_tasks and task_outcomes and loads them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.sources.landing_parser import open_parser, parsed
from crmflow.governance.operators import OperatorGate
from crmflow.tasks.ddl import TASK_OUTCOMES_TEMPLATE
from crmflow.tasks.schema import TASK_OUTCOMES, ensure_task_tables
from crmflow.warehouse import Warehouse, as_warehouse
from crmflow.warehouse.ddl import DUCKDB_SCHEMAS, DUCKDB_TYPES, render_ddl
from crmflow.warehouse.dialect import binary_order

OUTCOMES = TASK_OUTCOMES
# quarantine_task_outcomes.reason, in the order they are checked (docs/data-contracts.md).
QUARANTINE_REASONS = ("missing_columns", "malformed_row", "invalid_utf8", "missing_value", "invalid_outcome",
                      "invalid_timestamp", "invalid_duration", "unknown_task", "not_an_operator", "duplicate")
REQUIRED = ("task_id", "outcome", "handled_at", "handling_seconds")
OPTIONAL = ("operator_id", "notes")

# The outcome tables alone, for DuckDB (migration 31 creates them with the task tables).
OUTCOMES_DDL = render_ddl(TASK_OUTCOMES_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)


@dataclass
class OutcomeStats:
    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    tasks_updated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def _read_csv(path: Path) -> tuple[pa.Table | None, list[tuple[int | None, str, str]]]:
    """All columns as text; malformed lines come back as (line, text, reason)."""
    bad: list[tuple[int | None, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text, f"malformed_row: expected {row.expected_columns} columns, "
                                          f"got {row.actual_columns}"))
        return "skip"

    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8-sig", errors="replace").strip().split(",")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return None, [(1, ",".join(header), f"missing_columns: {', '.join(missing)}")]
    # Invalid UTF-8 would abort the whole read: decode with U+FFFD, and quarantine those rows.
    source = pa.BufferReader(path.read_bytes().decode("utf-8", errors="replace").encode("utf-8"))
    table = pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header},
                                             strings_can_be_null=True, quoted_strings_can_be_null=False),
    )
    return table, bad


def ingest_task_outcomes(con: Warehouse | Any, landing_dir: Path, loaded_at: datetime,
                         gate: OperatorGate | None = None) -> OutcomeStats:
    """`con` is a Warehouse (DuckDB or PostgreSQL) or a raw DuckDB connection. With an enforced operator
    gate (crmflow/governance/operators.py) a row whose operator_id is not the task's operator, or lacks
    the operator role for the task's rule, is quarantined as not_an_operator."""
    wh = as_warehouse(con)
    ensure_task_tables(wh)  # migration 31 includes the outcome tables
    stats = OutcomeStats()
    folder = Path(landing_dir) / "task_outcomes"
    seen = {(p, h) for p, h in wh.fetch_rows("select path, content_hash from task_outcome_files")}
    for path in sorted(folder.glob("*.csv")) if folder.exists() else []:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if (str(path), digest) in seen:
            stats.files_skipped += 1
            continue
        _load_file(wh, path, digest, loaded_at, stats, gate)
        stats.files_loaded += 1
    stats.tasks_updated = _apply_status(wh)
    return stats


def _field_checks(table: pa.Table) -> pa.Table:
    """Each row with handled_ts / handling_secs parsed and its first field problem ('reason|field', null
    when none), checked in the landing parser (DuckDB's casts, whatever the warehouse is)."""
    outcomes = ", ".join(f"'{o}'" for o in OUTCOMES)
    with open_parser() as parser:
        parser.register("_to_raw", table)
        return parsed(parser, f"""
            select r.*, try_cast(r.handled_at as timestamptz) as handled_ts,
                   try_cast(r.handling_seconds as bigint) as handling_secs,
                   case
                     when contains(concat_ws(',', r.task_id, r.outcome, r.handled_at, r.handling_seconds,
                                             r.operator_id, r.notes), chr(65533)) then 'invalid_utf8|'
                     when r.task_id is null or trim(r.task_id) = '' then 'missing_value|task_id'
                     when r.outcome is null or lower(trim(r.outcome)) not in ({outcomes})
                          then 'invalid_outcome|outcome'
                     when try_cast(r.handled_at as timestamptz) is null then 'invalid_timestamp|handled_at'
                     -- whole seconds only (a cast would round 1.5 to 2)
                     when not regexp_full_match(trim(r.handling_seconds), '[0-9]+')
                          or try_cast(r.handling_seconds as bigint) is null then 'invalid_duration|handling_seconds'
                   end as problem
            from _to_raw r order by r.line_number""")


# The checks against the warehouse, in order, on the rows without a problem yet; the same outcome
# twice in one file: the first line loads, the repeat is quarantined as a duplicate (kept with its line).
WAREHOUSE_CHECKS = (
    """update _to_checked set problem = 'unknown_task|task_id'
       where problem is null and trim(task_id) not in (select task_id from operator_tasks)""",
    """update _to_checked set problem = 'duplicate|task_id'
       where problem is null and exists (
           select 1 from task_outcomes o where o.task_id = trim(_to_checked.task_id)
           and o.outcome = lower(trim(_to_checked.outcome)) and o.handled_at = _to_checked.handled_ts)""",
    """update _to_checked set problem = 'duplicate|task_id'
       where line_number in (
           select line_number from (
               select line_number, row_number() over (partition by trim(task_id), lower(trim(outcome)), handled_ts
                                                      order by line_number) as nth
               from _to_checked where problem is null) d
           where nth > 1)""",
)


# With the operator gate on, after unknown_task: the reporter must be the task's operator and hold the
# operator role for its rule (_to_allowed: the allowed (operator_id, rule) pairs of the config).
OPERATOR_CHECK = """update _to_checked set problem = 'not_an_operator|operator_id'
       where problem is null and not exists (
           select 1 from operator_tasks t join _to_allowed a on a.operator_id = t.operator_id and a.rule = t.rule
           where t.task_id = trim(_to_checked.task_id) and t.operator_id = trim(_to_checked.operator_id))"""


def _allowed_table(wh: Warehouse, gate: OperatorGate) -> pa.Table:
    operators = [r[0] for r in wh.fetch_rows("select distinct operator_id from operator_tasks "
                                            "where operator_id is not null")]
    rules = [r[0] for r in wh.fetch_rows("select distinct rule from operator_tasks where rule is not null")]
    pairs = gate.allowed_pairs(operators, rules)
    return pa.table({"operator_id": pa.array([o for o, _ in pairs], pa.string()),
                     "rule": pa.array([r for _, r in pairs], pa.string())})


def _load_file(wh: Warehouse, path: Path, digest: str, loaded_at: datetime, stats: OutcomeStats,
               gate: OperatorGate | None = None) -> None:
    table, bad = _read_csv(path)
    params = {"file": str(path), "at": loaded_at}
    read = len(bad)
    loaded = 0
    checked = None
    if table is not None and table.num_rows:
        for column in OPTIONAL:
            if column not in table.column_names:
                table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
        # One line per record (newlines_in_values is off), header is line 1; the reader reports the
        # line of each malformed row, so the good rows hold the remaining lines in order.
        bad_lines = {line for line, _, _ in bad if line is not None}
        lines = [n for n in range(2, table.num_rows + len(bad_lines) + 2) if n not in bad_lines]
        table = table.append_column("line_number", pa.array(lines[: table.num_rows], pa.int64()))
        checked = _field_checks(table.select([*REQUIRED, *OPTIONAL, "line_number"]))
        read += table.num_rows
    with wh.transaction():
        if bad:
            wh.write_arrow(pa.table({
                "source_file": pa.array([str(path)] * len(bad), pa.string()),
                "line_number": pa.array([line for line, _, _ in bad], pa.int64()),
                "raw_content": pa.array([text for _, text, _ in bad], pa.string()),
                "reason": pa.array([reason for _, _, reason in bad], pa.string()),
                "field": pa.nulls(len(bad), pa.string()),
                "quarantined_at": pa.array([loaded_at] * len(bad), pa.timestamp("us", tz="UTC")),
            }), "quarantine_task_outcomes")
        if checked is not None:
            wh.create_temp_table("_to_checked", checked)
            checks = list(WAREHOUSE_CHECKS)
            if gate is not None and gate.enforced:
                wh.create_temp_table("_to_allowed", _allowed_table(wh, gate))
                checks.insert(1, OPERATOR_CHECK)
            for statement in checks:
                wh.execute(statement)
            if gate is not None and gate.enforced:
                wh.drop_table("_to_allowed")
            wh.execute("""
                insert into quarantine_task_outcomes
                    (source_file, line_number, raw_content, reason, field, quarantined_at)
                select $file, line_number,
                       concat_ws(',', task_id, outcome, handled_at, handling_seconds, operator_id, notes),
                       split_part(problem, '|', 1), split_part(problem, '|', 2), $at
                from _to_checked where problem is not null""", params)
            loaded = wh.scalar("select count(*) from _to_checked where problem is null")
            wh.execute("""
                insert into task_outcomes (task_id, operator_id, outcome, handled_at, handling_seconds, notes,
                                           source_file, line_number, loaded_at)
                select trim(task_id), nullif(trim(operator_id), ''), lower(trim(outcome)), handled_ts,
                       handling_secs, notes, $file, line_number, $at
                from _to_checked where problem is null""", params)
            for reason, n in wh.fetch_rows("select split_part(problem, '|', 1), count(*) from _to_checked "
                                           "where problem is not null group by split_part(problem, '|', 1)"):
                stats.reasons[reason] = stats.reasons.get(reason, 0) + n
            wh.drop_table("_to_checked")
        quarantined = read - loaded
        wh.execute("insert into task_outcome_files (path, content_hash, rows_read, rows_loaded, rows_quarantined, "
                   "loaded_at) values ($file, $hash, $read, $loaded, $q, $at)",
                   {**params, "hash": digest, "read": read, "loaded": loaded, "q": quarantined})
    for _, _, reason in bad:
        key = reason.split(":")[0]
        stats.reasons[key] = stats.reasons.get(key, 0) + 1
    stats.rows_read += read
    stats.rows_loaded += loaded
    stats.rows_quarantined += quarantined


def _apply_status(wh: Warehouse) -> int:
    """Each task takes the status of its latest outcome (idempotent). At the same handled_at the line
    loaded last wins (loaded_at, then file and line), so the choice is the same on every engine."""
    latest = f"""
        select task_id, outcome, handled_at from (
            select task_id, outcome, handled_at,
                   row_number() over (partition by task_id order by handled_at desc, loaded_at desc,
                                      {binary_order('source_file', wh.dialect)} desc, line_number desc) as nth
            from task_outcomes) ranked
        where nth = 1"""
    return len(wh.fetch_rows(f"""
        update operator_tasks set status = o.outcome, status_updated_at = o.handled_at
        from ({latest}) o
        where operator_tasks.task_id = o.task_id
          and (operator_tasks.status <> o.outcome or operator_tasks.status_updated_at <> o.handled_at)
        returning operator_tasks.task_id"""))
