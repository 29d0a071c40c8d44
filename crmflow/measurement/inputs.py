"""Measurement's warehouse I/O: Arrow <-> pandas, rebuilding a table Python owns."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from crmflow.warehouse import Warehouse


def frame_from_arrow(table: pa.Table) -> pd.DataFrame:
    """A query result as pandas the way the charts and statistics read it on every engine:
    decimals as float64, dates as datetime64 (what DuckDB's own `.df()` gave)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table.to_pandas(date_as_object=False)


def replace_rows(wh: Warehouse, relation: str, frame: pd.DataFrame, schema: pa.Schema) -> None:
    """Make `relation` hold exactly `frame` (typed by `schema`); the caller holds the transaction."""
    wh.execute(f"delete from {relation}")
    if len(frame):
        rows = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
        wh.write_arrow(rows, relation)
