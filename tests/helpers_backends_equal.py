"""Comparing two warehouses table by table (tests/test_backends_equal.py).

Rows are normalised before they are compared, so that only a real difference counts: floats to ten
significant digits (equal to 1e-9 relative), Decimals as floats, timestamps as UTC instants, JSON text
as its parsed value (keys sorted). Tables are compared as multisets of rows: order never matters.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crmflow.warehouse import Warehouse

SAMPLE_ROWS = 3


def normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return float(f"{value:.9e}") if value else 0.0
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, list):
        return json.dumps([normalise(v) for v in value], sort_keys=True, default=str)
    return value


@dataclass
class TableDiff:
    table: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.table}: " + "; ".join(self.problems)


def table_rows(warehouse: Warehouse, table: str, ignored: frozenset[str]) -> tuple[list[str], Counter]:
    arrow = warehouse.fetch_arrow(table)
    columns = sorted(c for c in arrow.column_names if c not in ignored)
    data = arrow.select(columns).to_pylist()
    return columns, Counter(tuple(normalise(row[c]) for c in columns) for row in data)


def compare_table(left: Warehouse, right: Warehouse, table: str, ignored: frozenset[str]) -> TableDiff | None:
    """None when `table` holds the same rows on both warehouses; else what differs, with samples."""
    diff = TableDiff(table)
    present = [left.table_exists(table), right.table_exists(table)]
    if present != [True, True]:
        diff.problems.append(f"exists on duckdb={present[0]}, postgres={present[1]}")
        return diff
    left_columns, left_rows = table_rows(left, table, ignored)
    right_columns, right_rows = table_rows(right, table, ignored)
    if left_columns != right_columns:
        only_left = sorted(set(left_columns) - set(right_columns))
        only_right = sorted(set(right_columns) - set(left_columns))
        diff.problems.append(f"columns only on duckdb {only_left}, only on postgres {only_right}")
        return diff
    if left_rows == right_rows:
        return None
    missing = list((left_rows - right_rows).elements())
    extra = list((right_rows - left_rows).elements())
    diff.problems.append(
        f"{sum(left_rows.values())} rows on duckdb, {sum(right_rows.values())} on postgres; "
        f"{len(missing)} only on duckdb, {len(extra)} only on postgres; columns {left_columns}"
    )
    for name, rows in (("duckdb", missing), ("postgres", extra)):
        for row in sorted(rows, key=repr)[:SAMPLE_ROWS]:
            diff.problems.append(f"only on {name}: {repr(row)[:600]}")
    return diff
