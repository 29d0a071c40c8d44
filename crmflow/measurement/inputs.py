"""Measurement's warehouse I/O: stand-ins for missing inputs, Arrow <-> pandas, rebuilding a table.

Stand-ins let measurement run on any warehouse, even before the journeys, the shop orders or the
delivery webhooks ever ran: a missing table reads as an empty one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa

from crmflow.warehouse import Warehouse

TEXT, INSTANT = pa.string(), pa.timestamp("us", tz="UTC")

# The columns measurement and the report read, for empty stand-ins of missing inputs (the owners'
# DDL: crmflow/journeys/tables.py, crmflow/warehouse/ddl.py OPS_TEMPLATE, the dbt staging and core models).
EMPTY_RELATIONS: dict[str, pa.Schema] = {
    "stg_shop__orders": pa.schema([("order_id", TEXT), ("user_id", TEXT), ("ordered_at", INSTANT),
                                   ("status", TEXT), ("amount", pa.decimal128(18, 2))]),
    "events_stitched": pa.schema([("message_id", TEXT), ("user_id", TEXT), ("event_name", TEXT),
                                  ("event_at", INSTANT)]),
    "send_ledger": pa.schema([("message_key", TEXT), ("journey_id", TEXT), ("step_id", TEXT), ("variant", TEXT),
                              ("user_id", TEXT), ("channel", TEXT), ("state", TEXT), ("sent_at", INSTANT)]),
    "journey_enrolments": pa.schema([("enrolment_id", TEXT), ("journey_id", TEXT), ("user_id", TEXT),
                                     ("is_holdout", pa.bool_()), ("trigger_at", INSTANT),
                                     ("converted_at", INSTANT)]),
    "delivery_events": pa.schema([("event_id", TEXT), ("channel", TEXT), ("message_key", TEXT), ("event", TEXT),
                                  ("occurred_at", INSTANT), ("user_id", TEXT)]),
}


@contextmanager
def stand_ins(wh: Warehouse) -> Iterator[set[str]]:
    """Empty temp stand-ins for the missing inputs while the block runs; yields the missing names.

    A temp table is found before a schema's table of the same name on both engines, and it is
    dropped afterwards so a later `create table if not exists` on the connection is not fooled.
    """
    missing = {name for name in EMPTY_RELATIONS if not wh.table_exists(name)}
    for name in sorted(missing):
        wh.create_temp_table(name, EMPTY_RELATIONS[name].empty_table())
    try:
        yield missing
    finally:
        for name in sorted(missing):
            wh.drop_table(name)


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
