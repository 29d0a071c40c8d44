"""DDL of the journey tables (contract: docs/data-contracts.md section 5): migration 10, schema {ops}.

`JOURNEY_TEMPLATE` is portable DDL (crmflow/warehouse/migrations.py applies it on DuckDB and
PostgreSQL); `JOURNEY_DDL` is the same with bare table names, for the docs-consistency test.
This module imports nothing from crmflow.warehouse at load time: migrations.py imports it.
"""

from __future__ import annotations

from typing import Any

# The values of send_ledger.state and journey_decisions.decision, as the DDL comments below and
# docs/data-contracts.md list them (tests/test_docs_consistency.py checks all three and the SQL).
# A holdout is an `entered` decision with reason `holdout`, not a decision of its own.
LEDGER_STATES = ("planned", "sending", "sent", "failed", "suppressed", "capped", "skipped", "unknown",
                 "lost")  # lost: added by migration 55 (crmflow/journeys/dispatch_ddl.py)
DECISIONS = ("entered", "exited", "converted", "suppressed", "capped", "deferred", "skipped", "unknown", "requeued")

JOURNEY_TEMPLATE = """
create table if not exists {ops}.journey_enrolments (
    enrolment_id varchar primary key,      -- sha256(journey_id|user_id|entry_key), first 32 hex chars
    journey_id varchar not null,
    user_id varchar not null,
    entry_key varchar not null,            -- what made this entry unique: event id, segment/tier change time, date
    trigger_at timestamptz not null,       -- when the trigger happened; goals and conditions count from here
    entered_at timestamptz not null,       -- the tick (as-of) that enrolled the user
    is_holdout boolean not null,
    status varchar not null,               -- active | completed | exited | holdout
    current_step varchar,                  -- null once finished (and for holdouts)
    step_entered_at timestamptz,
    converted_at timestamptz,              -- goal reached (also recorded for holdouts)
    exit_reason varchar,
    exited_at timestamptz,
    updated_at timestamptz not null
);
create table if not exists {ops}.send_ledger (
    message_key varchar primary key,       -- sha256(journey_id|enrolment_id|step_id|variant)
    journey_id varchar not null,
    step_id varchar not null,
    enrolment_id varchar not null,
    user_id varchar not null,
    channel varchar not null,
    variant varchar,
    template varchar not null,
    priority integer not null,
    content_ref varchar,                   -- sha256 of the rendered content, set when dispatched
    send_after timestamptz not null,
    state varchar not null,                -- planned|sending|sent|failed|suppressed|capped|skipped|unknown
    reason varchar,
    attempts integer not null default 0,
    provider_message_id varchar,
    error varchar,
    planned_at timestamptz not null,
    sent_at timestamptz,
    updated_at timestamptz not null
);
create table if not exists {ops}.journey_decisions (
    decision_key varchar primary key,      -- sha256(subject|decision|as_of): a rerun adds nothing
    journey_id varchar not null,
    user_id varchar,
    enrolment_id varchar,
    message_key varchar,
    step_id varchar,
    decision varchar not null,             -- entered|exited|converted|suppressed|capped|deferred|skipped|unknown|requeued
    reason varchar,
    decided_at timestamptz not null
);
create table if not exists {ops}.journey_banner_overrides (
    user_id varchar not null,
    slot varchar not null,
    creative_id varchar not null,
    journey_id varchar not null,
    enrolment_id varchar not null,
    valid_from timestamptz not null,
    valid_until timestamptz not null,
    primary key (enrolment_id, slot)
);
create table if not exists {ops}.journey_task_requests (
    request_key varchar primary key,       -- sha256(journey_id|enrolment_id|step_id)
    user_id varchar not null,
    journey_id varchar not null,
    step_id varchar not null,
    rule varchar,
    queue varchar not null,
    priority varchar not null,             -- low | normal | high | urgent
    note varchar,
    requested_at timestamptz not null
);
create table if not exists {ops}.journey_tags (
    user_id varchar not null,
    tag varchar not null,
    journey_id varchar not null,
    added_at timestamptz not null,
    removed_at timestamptz
);
create table if not exists {ops}.journey_ticks (
    journey_id varchar not null,
    as_of timestamptz not null,
    config_hash varchar not null,
    entered bigint not null,
    holdout bigint not null,
    exited bigint not null,
    planned bigint not null,
    active bigint not null,
    primary key (journey_id, as_of)
);
"""


JOURNEY_DDL = JOURNEY_TEMPLATE.replace("{ops}.", "")


def ensure_journey_tables(con_or_warehouse: Any) -> None:
    """Bring the warehouse to the latest schema (idempotent); call it outside a transaction.

    Takes a Warehouse or a raw DuckDB connection (callers not yet ported)."""
    # Imported here: crmflow.warehouse.migrations imports this module for JOURNEY_TEMPLATE.
    from crmflow.warehouse import apply_migrations, as_warehouse

    apply_migrations(as_warehouse(con_or_warehouse))
