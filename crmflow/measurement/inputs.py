"""Stand-ins for missing inputs: measurement runs on any warehouse, even before the journeys, the
shop orders or the delivery webhooks ever ran. A missing table reads as an empty one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from crmflow.banners.relations import existing_relations

# The columns measurement and the report read, for empty stand-ins of missing inputs (the owners'
# DDL: crmflow/journeys/tables.py, crmflow/warehouse.py OPS_DDL, the dbt staging and core models).
EMPTY_RELATIONS = {
    "stg_shop__orders": "order_id varchar, user_id varchar, ordered_at timestamptz, status varchar, "
                        "amount decimal(18, 2)",
    "events_stitched": "message_id varchar, user_id varchar, event_name varchar, event_at timestamptz",
    "send_ledger": "message_key varchar, journey_id varchar, step_id varchar, variant varchar, user_id varchar, "
                   "channel varchar, state varchar, sent_at timestamptz",
    "journey_enrolments": "enrolment_id varchar, journey_id varchar, user_id varchar, is_holdout boolean, "
                          "trigger_at timestamptz, converted_at timestamptz",
    "delivery_events": "event_id varchar, channel varchar, message_key varchar, event varchar, "
                       "occurred_at timestamptz, user_id varchar",
}


@contextmanager
def stand_ins(con: duckdb.DuckDBPyConnection) -> Iterator[set[str]]:
    """Empty temp stand-ins for the missing inputs while the block runs; yields the missing names.

    Stand-ins are only created where the real relation does not exist, and dropped afterwards so a
    later `create table if not exists` on the same connection is not fooled by a temp table.
    """
    missing = _create_stand_ins(con)
    try:
        yield missing
    finally:
        for name in missing:
            con.execute(f"drop table if exists temp.main.{name}")


def _create_stand_ins(con: duckdb.DuckDBPyConnection) -> set[str]:
    existing = existing_relations(con)
    missing: set[str] = set()
    for name, columns in EMPTY_RELATIONS.items():
        if name not in existing:
            con.execute(f"create or replace temp table {name} ({columns})")
            missing.add(name)
    return missing
