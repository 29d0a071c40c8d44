"""Column-wise tables written as CSV or JSON lines, and the injection of deliberately bad rows.

A `TextTable` holds one string array per column (null = missing) and, per column, how the value
is written in JSON ("str": quoted, "raw": number/boolean/array as is). Dirty rows are copies of
random clean rows with one defect each; every dirty row gets its own identifier suffix so it never
collides with a clean row, and the reason is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crmflow.generator.format import csv_quote, join, jraw, jstr, to_binary


@dataclass
class TextTable:
    columns: list[str]
    values: dict[str, pa.Array]
    json_kind: dict[str, str]
    # Per-row JSON kind overrides (e.g. a boolean column holding the string "maybe").
    quoted_overrides: dict[str, np.ndarray] = field(default_factory=dict)
    extra_csv_field: np.ndarray | None = None  # rows that get one field too many (CSV)

    def __len__(self) -> int:
        return len(self.values[self.columns[0]])

    def take(self, index: np.ndarray) -> TextTable:
        idx = pa.array(index, pa.int64())
        return TextTable(
            columns=self.columns,
            values={k: v.take(idx) for k, v in self.values.items()},
            json_kind=dict(self.json_kind),
        )

    def csv_lines(self) -> pa.Array:
        fields = []
        for name in self.columns:
            value = pc.fill_null(self.values[name], "")
            needs_quotes = pc.match_substring_regex(value, '[,"\\n]')
            fields.append(pc.if_else(needs_quotes, csv_quote(value), value))
        if self.extra_csv_field is not None:
            fields.append(pa.array(np.where(self.extra_csv_field, ",unexpected", "")))
            return to_binary(join(pc.binary_join_element_wise(*fields[:-1], ","), fields[-1]))
        return to_binary(pc.binary_join_element_wise(*fields, ","))

    def json_lines(self) -> pa.Array:
        parts: list[pa.Array | str] = ["{"]
        last = self.columns[-1]
        for name in self.columns:
            trailing = "" if name == last else ","
            value = self.values[name]
            if self.json_kind[name] == "str":
                part = jstr(name, value, trailing)
            else:
                part = jraw(name, value, trailing)
                override = self.quoted_overrides.get(name)
                if override is not None:
                    part = pc.if_else(pa.array(override), jstr(name, value, trailing), part)
            parts.append(part)
        parts.append("}")
        return to_binary(join(*parts))

    def header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode()


# A defect: takes the copied rows (a TextTable) and the rng and changes it in place.
Defect = Callable[[TextTable, np.random.Generator], None]


def dirty_count(n_rows: int, fraction: float, n_reasons: int) -> int:
    """round(fraction * rows), but at least one row per reason once the data is not tiny."""
    if fraction <= 0 or n_rows == 0:
        return 0
    return max(int(round(fraction * n_rows)), min(n_reasons, n_rows // 20))


def pick_dirty(rng: np.random.Generator, n_rows: int, fraction: float, reasons: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Source rows to copy and the reason code (index into reasons) of each dirty copy."""
    n = dirty_count(n_rows, fraction, len(reasons))
    source = rng.integers(0, n_rows, n) if n else np.zeros(0, np.int64)
    reason = rng.permutation(np.arange(n) % len(reasons)) if n else np.zeros(0, np.int64)
    return source, reason


def set_value(table: TextTable, column: str, value: str | None, quoted: bool = False) -> None:
    n = len(table)
    table.values[column] = pa.array([value] * 1, pa.string()).take(pa.array(np.zeros(n, np.int64)))
    if quoted:
        table.quoted_overrides[column] = np.ones(n, dtype=bool)


def alternate(table: TextTable, column: str, first: str, second: str, quoted: bool = False) -> None:
    """Half the rows get one bad value, half another (e.g. "12,50" and "abc")."""
    n = len(table)
    table.values[column] = pa.array([first, second], pa.string()).take(pa.array(np.arange(n) % 2))
    if quoted:
        table.quoted_overrides[column] = np.ones(n, dtype=bool)


@dataclass
class Batch:
    """Lines bound for files named <prefix>-<period>.<ext>; `t` picks the period and the order."""

    kind: str  # events | registrations | orders (the landing sub-folder)
    prefix: str
    ext: str
    t: np.ndarray
    lines: pa.Array
    header: bytes | None = None


def split_formats(
    kind: str, prefix: str, table: TextTable, t: np.ndarray, as_jsonl: np.ndarray, jsonl_prefix: str
) -> list[Batch]:
    """Rows flagged as_jsonl go to <jsonl_prefix>-*.jsonl, the rest to <prefix>-*.csv."""
    csv_rows = np.flatnonzero(~as_jsonl)
    json_rows = np.flatnonzero(as_jsonl)
    batches = []
    if len(csv_rows):
        part = table.take(csv_rows)
        part.quoted_overrides = {k: v[csv_rows] for k, v in table.quoted_overrides.items()}
        if table.extra_csv_field is not None:
            part.extra_csv_field = table.extra_csv_field[csv_rows]
        batches.append(Batch(kind, prefix, "csv", t[csv_rows], part.csv_lines(), table.header()))
    if len(json_rows):
        part = table.take(json_rows)
        part.quoted_overrides = {k: v[json_rows] for k, v in table.quoted_overrides.items()}
        batches.append(Batch(kind, jsonl_prefix, "jsonl", t[json_rows], part.json_lines()))
    return batches


def concat_tables(tables: list[TextTable]) -> TextTable:
    """Stack tables with the same columns (clean rows, then dirty copies)."""
    first = tables[0]
    n_total = sum(len(t) for t in tables)
    overrides: dict[str, np.ndarray] = {}
    for name in {k for t in tables for k in t.quoted_overrides}:
        overrides[name] = np.concatenate(
            [t.quoted_overrides.get(name, np.zeros(len(t), dtype=bool)) for t in tables])
    extra = None
    if any(t.extra_csv_field is not None for t in tables):
        extra = np.concatenate([
            t.extra_csv_field if t.extra_csv_field is not None else np.zeros(len(t), dtype=bool)
            for t in tables])
    values = {k: pa.concat_arrays([t.values[k].cast(pa.string()) for t in tables]) for k in first.columns}
    assert len(values[first.columns[0]]) == n_total
    return TextTable(first.columns, values, dict(first.json_kind), overrides, extra)


def inject_defects(
    rng: np.random.Generator, clean: TextTable, fraction: float, defects: dict[str, Defect], id_column: str,
) -> tuple[TextTable, np.ndarray, dict[str, int]]:
    """Dirty copies of random clean rows, one defect each. -> (dirty rows, their source rows, counts)."""
    reasons = list(defects)
    source, reason = pick_dirty(rng, len(clean), fraction, reasons)
    counts = {name: 0 for name in reasons}
    pieces: list[TextTable] = []
    sources: list[np.ndarray] = []
    for code, name in enumerate(reasons):  # one pass per reason, not per row
        rows = source[reason == code]
        if not len(rows):
            continue
        part = clean.take(rows)
        # A fresh identifier: a dirty copy never shadows (or is shadowed by) its clean original.
        part.values[id_column] = join(part.values[id_column], f"-bad{code}")
        defects[name](part, rng)
        pieces.append(part)
        sources.append(rows)
        counts[name] = len(rows)
    if not pieces:
        empty = clean.take(np.zeros(0, np.int64))
        return empty, np.zeros(0, np.int64), counts
    return concat_tables(pieces), np.concatenate(sources), counts


def clean_and_dirty_batches(
    rng: np.random.Generator, kind: str, clean: TextTable, t: np.ndarray, as_jsonl: np.ndarray,
    fraction: float, defects: dict[str, Defect], id_column: str,
) -> tuple[list[Batch], dict[str, int]]:
    """Clean rows plus their dirty copies, split into <kind>-*.csv and <kind>-app-*.jsonl batches."""
    dirty, source, reasons = inject_defects(rng, clean, fraction, defects, id_column)
    table = concat_tables([clean, dirty])
    t_all = np.concatenate([t, t[source]])
    jsonl = np.concatenate([as_jsonl, as_jsonl[source]])
    if dirty.extra_csv_field is not None:  # a column-count defect only exists in CSV
        jsonl &= ~np.concatenate([np.zeros(len(clean), bool), dirty.extra_csv_field])
    batches = split_formats(kind, kind, table, t_all, jsonl, f"{kind}-app")
    return batches, {f"dirty.{kind}.{k}": v for k, v in reasons.items()}
