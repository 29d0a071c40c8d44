"""Task outcomes from <landing>/task_outcomes/*.csv into task_outcomes; task status follows.

CSV header: task_id,outcome,handled_at,handling_seconds,operator_id,notes (operator_id and notes
optional). outcome: done | no_answer | converted. Each file is loaded once per content hash. Bad
rows go to quarantine_task_outcomes with the file, line, field and reason; nothing is dropped
silently. A task's status becomes its latest outcome (by handled_at).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from crmflow.tasks.ddl import TASK_OUTCOMES_TEMPLATE
from crmflow.tasks.schema import TASK_OUTCOMES, ensure_task_tables
from crmflow.warehouse import transaction
from crmflow.warehouse.ddl import DUCKDB_SCHEMAS, DUCKDB_TYPES, render_ddl

OUTCOMES = TASK_OUTCOMES
# quarantine_task_outcomes.reason, in the order they are checked (docs/data-contracts.md).
QUARANTINE_REASONS = ("missing_columns", "malformed_row", "invalid_utf8", "missing_value", "invalid_outcome",
                      "invalid_timestamp", "invalid_duration", "unknown_task", "duplicate")
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


def ingest_task_outcomes(con: duckdb.DuckDBPyConnection, landing_dir: Path, loaded_at: datetime) -> OutcomeStats:
    ensure_task_tables(con)  # migration 31 includes the outcome tables
    stats = OutcomeStats()
    folder = Path(landing_dir) / "task_outcomes"
    seen = {(p, h) for p, h in con.execute("select path, content_hash from task_outcome_files").fetchall()}
    for path in sorted(folder.glob("*.csv")) if folder.exists() else []:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if (str(path), digest) in seen:
            stats.files_skipped += 1
            continue
        _load_file(con, path, digest, loaded_at, stats)
        stats.files_loaded += 1
    stats.tasks_updated = _apply_status(con)
    return stats


def _load_file(con: duckdb.DuckDBPyConnection, path: Path, digest: str, loaded_at: datetime,
               stats: OutcomeStats) -> None:
    table, bad = _read_csv(path)
    params = {"file": str(path), "at": loaded_at}
    with transaction(con):
        for line, text, reason in bad:
            con.execute("insert into quarantine_task_outcomes values ($file, $line, $text, $reason, null, $at)",
                        {**params, "line": line, "text": text, "reason": reason})
        read = len(bad)
        loaded = 0
        if table is not None and table.num_rows:
            for column in OPTIONAL:
                if column not in table.column_names:
                    table = table.append_column(column, pa.nulls(table.num_rows, pa.string()))
            # One line per record (newlines_in_values is off), header is line 1; the reader reports the
            # line of each malformed row, so the good rows hold the remaining lines in order.
            bad_lines = {line for line, _, _ in bad if line is not None}
            lines = [n for n in range(2, table.num_rows + len(bad_lines) + 2) if n not in bad_lines]
            table = table.append_column("line_number", pa.array(lines[: table.num_rows], pa.int64()))
            con.register("_to_raw", table)
            outcomes = ", ".join(f"'{o}'" for o in OUTCOMES)
            con.execute(f"""
                create or replace temp table _to_checked as
                select r.*, try_cast(r.handled_at as timestamptz) as handled_ts,
                       try_cast(r.handling_seconds as bigint) as handling_secs,
                       case
                         when contains(concat_ws(',', r.task_id, r.outcome, r.handled_at, r.handling_seconds,
                                                 r.operator_id, r.notes), chr(65533)) then 'invalid_utf8|'
                         when r.task_id is null or trim(r.task_id) = '' then 'missing_value|task_id'
                         when r.outcome is null or lower(trim(r.outcome)) not in ({outcomes})
                              then 'invalid_outcome|outcome'
                         when try_cast(r.handled_at as timestamptz) is null then 'invalid_timestamp|handled_at'
                         when try_cast(r.handling_seconds as bigint) is null
                              or try_cast(r.handling_seconds as bigint) < 0 then 'invalid_duration|handling_seconds'
                         when r.task_id not in (select task_id from operator_tasks) then 'unknown_task|task_id'
                         when exists (select 1 from task_outcomes o where o.task_id = r.task_id
                                      and o.outcome = lower(trim(r.outcome))
                                      and o.handled_at = try_cast(r.handled_at as timestamptz))
                              then 'duplicate|task_id'
                       end as problem
                from _to_raw r
            """)
            con.unregister("_to_raw")
            # The same outcome twice in one file: the first line loads, the repeat is quarantined as a
            # duplicate (counted and kept with its line, not dropped silently).
            con.execute("""
                update _to_checked c set problem = 'duplicate|task_id'
                from (select line_number from _to_checked where problem is null
                      qualify row_number() over (partition by trim(task_id), lower(trim(outcome)), handled_ts
                                                 order by line_number) > 1) d
                where c.line_number = d.line_number""")
            con.execute("""
                insert into quarantine_task_outcomes
                select $file, line_number,
                       concat_ws(',', task_id, outcome, handled_at, handling_seconds, operator_id, notes),
                       split_part(problem, '|', 1), split_part(problem, '|', 2), $at
                from _to_checked where problem is not null""", params)
            loaded = con.execute("""
                insert into task_outcomes
                select trim(task_id), nullif(trim(operator_id), ''), lower(trim(outcome)), handled_ts,
                       handling_secs, notes, $file, line_number, $at
                from _to_checked where problem is null
                -- the same outcome twice in one file counts once
                qualify row_number() over (partition by trim(task_id), lower(trim(outcome)), handled_ts
                                           order by line_number) = 1""", params).fetchall()[0][0]
            for reason, n in con.execute("select split_part(problem, '|', 1), count(*) from _to_checked "
                                         "where problem is not null group by 1").fetchall():
                stats.reasons[reason] = stats.reasons.get(reason, 0) + n
            read += table.num_rows
        for _, _, reason in bad:
            key = reason.split(":")[0]
            stats.reasons[key] = stats.reasons.get(key, 0) + 1
        quarantined = read - loaded
        con.execute("insert into task_outcome_files values ($file, $hash, $read, $loaded, $q, $at)",
                    {**params, "hash": digest, "read": read, "loaded": loaded, "q": quarantined})
    stats.rows_read += read
    stats.rows_loaded += loaded
    stats.rows_quarantined += quarantined


def _apply_status(con: duckdb.DuckDBPyConnection) -> int:
    """Each task takes the status of its latest outcome (idempotent)."""
    return con.execute("""
        update operator_tasks t set status = o.outcome, status_updated_at = o.handled_at
        from (select task_id, arg_max(outcome, handled_at) as outcome, max(handled_at) as handled_at
              from task_outcomes group by task_id) o
        where t.task_id = o.task_id and (t.status <> o.outcome or t.status_updated_at <> o.handled_at)
    """).fetchall()[0][0]
