"""The warehouse DDL crmflow owns, written once in portable SQL (migration 1) and rendered per engine.

Templates name their schema with `{raw}` / `{ops}` and their JSON type with `{json}`; `render_ddl`
fills them in from a backend's schema and type maps (PostgreSQL: schemas crm_raw, crm_ops,
crm_analytics, crm_exports and jsonb; DuckDB: everything in `main` for now, and json). Types are the ones both engines accept: varchar, bigint,
integer, boolean, double precision, decimal(18, 2), timestamptz, date.

`RAW_DDL`, `QUARANTINE_DDL`, `TAGS_DDL`, `OPS_DDL` and `ensure_raw_tables` / `ensure_ops_tables` are
the DuckDB renderings that modules not yet ported to the warehouse interface use unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Raw tables written by ingestion (the contract is in docs/data-contracts.md). Every raw row keeps
# its lineage: the file and line it came from and the run that loaded it.
RAW_TEMPLATE = """
create table if not exists {raw}.raw_events (
    -- unique by construction (first-copy-wins dedupe in connectors/sources/merge.py, tested; dbt's
    -- unique test on stg_tracking__events); no PRIMARY KEY index: it cost ~13 % of the events load
    message_id varchar not null,
    type varchar not null,
    event varchar,
    user_id varchar,
    anonymous_id varchar,
    event_at timestamptz not null,
    properties {json},
    context {json},
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null
);
create table if not exists {raw}.raw_registrations (
    user_id varchar primary key,
    registered_at timestamptz not null,
    updated_at timestamptz not null,
    email varchar,
    phone varchar,
    first_name varchar,
    country varchar,
    city varchar,
    locale varchar,
    timezone varchar,
    acquisition_channel varchar,
    customer_type varchar not null,
    company_name varchar,
    industry varchar,
    employees integer,
    email_opt_in boolean not null,
    sms_opt_in boolean not null,
    push_opt_in boolean not null,
    push_token varchar,
    birth_date date,
    gender varchar,
    contract_end_date date,
    referred_by varchar,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null
);
create table if not exists {raw}.raw_orders (
    order_id varchar primary key,
    user_id varchar not null,
    ordered_at timestamptz not null,
    updated_at timestamptz not null,
    status varchar not null,
    amount decimal(18, 2) not null,
    currency varchar not null,
    items {json},
    channel varchar,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null
);
create table if not exists {raw}.ingested_files (
    source varchar not null,
    path varchar not null,
    content_hash varchar not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    duplicates_skipped bigint not null,
    rows_quarantined bigint not null,
    ingested_at timestamptz not null,
    file_size bigint,  -- size and mtime (ns) when loaded: an unchanged file is skipped without hashing
    mtime_ns bigint,
    primary key (path, content_hash)
);
alter table {raw}.ingested_files add column if not exists file_size bigint;
alter table {raw}.ingested_files add column if not exists mtime_ns bigint;
"""

QUARANTINE_TEMPLATE = """
create table if not exists {raw}.quarantine_{source} (
    source_file varchar not null,
    line_number bigint not null,
    raw_content varchar,
    reason varchar not null,
    field varchar,
    quarantined_at timestamptz not null
);
"""

SOURCES = ("events", "registrations", "orders")

# Manual customer tags (assets/manual_tags.py) and the compiled rule-based tag config
# (crmflow/tags.py). Created with the raw tables so dbt's customer_tags always has its inputs.
TAGS_TEMPLATE = """
create table if not exists {raw}.raw_manual_tags (
    user_id varchar not null,
    tag varchar not null,
    added_by varchar not null,
    added_at timestamptz not null,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null,
    primary key (user_id, tag)
);
create table if not exists {raw}.tag_rules (
    tag varchar not null,
    description varchar not null,
    condition_no integer not null,
    field varchar not null,
    operator varchar not null,
    value_num double precision,
    value_text varchar,
    loaded_at timestamptz not null,
    primary key (tag, condition_no)
);
"""

# Operational tables shared by the channels (writers) and the journey policies (readers).
OPS_TEMPLATE = """
create table if not exists {ops}.suppression_list (
    channel varchar not null,          -- email | sms | push | all
    address varchar not null,          -- email (lower-case), E.164 phone, push token, or user_id for 'all'
    user_id varchar,
    reason varchar not null,           -- unsubscribe | bounce | spamreport | dropped | dead_token | erased | manual
    source varchar not null,           -- sendgrid | twilio | fcm | privacy | manual
    suppressed_at timestamptz not null,
    primary key (channel, address)
);
create table if not exists {ops}.delivery_events (
    event_id varchar primary key,      -- provider event id, or a hash of the payload
    channel varchar not null,
    provider varchar not null,
    message_key varchar,               -- the ledger key, when the provider echoes it (custom_args)
    provider_message_id varchar,
    event varchar not null,            -- processed|delivered|deferred|bounce|dropped|open|click|spamreport|unsubscribe|group_unsubscribe|queued|sent|undelivered|failed
    address varchar,
    reason varchar,
    occurred_at timestamptz not null,
    url varchar,
    _source_file varchar,
    _loaded_at timestamptz not null,
    user_id varchar                    -- from custom_args or the ledger (join by message_key)
);
create table if not exists {ops}.delivery_event_files (
    path varchar not null,             -- landing file of webhook envelopes (crmflow/delivery_events.py)
    content_hash varchar not null,
    provider varchar not null,
    envelopes bigint not null,
    envelopes_rejected bigint not null, -- failed signature verification or malformed: not loaded
    events bigint not null,
    loaded_at timestamptz not null,
    primary key (path, content_hash)
);
"""


QUARANTINED_SOURCES = (*SOURCES, "manual_tags")

# Migration 1: every table above, in the order ensure_raw_tables + ensure_ops_tables create them.
# The `alter ... add column if not exists` lines upgrade DuckDB files made before those columns.
MIGRATION_1_TEMPLATE = "".join(
    [
        RAW_TEMPLATE,
        *(QUARANTINE_TEMPLATE.replace("{source}", source) for source in QUARANTINED_SOURCES),
        TAGS_TEMPLATE,
        OPS_TEMPLATE,
        "alter table {ops}.delivery_events add column if not exists user_id varchar;\n",
    ]
)

TEMPLATE_SCHEMAS = ("raw", "ops", "analytics", "exports")


def render_ddl(template: str, schemas: Mapping[str, str], types: Mapping[str, str]) -> str:
    """Fill `{raw}`/`{ops}`/`{analytics}`/`{exports}` and `{json}`; other braces (`{source}`) stay."""
    for logical in TEMPLATE_SCHEMAS:
        template = template.replace("{" + logical + "}", schemas[logical])
    return template.replace("{json}", types["json"])


POSTGRES_SCHEMAS = {logical: f"crm_{logical}" for logical in TEMPLATE_SCHEMAS}
POSTGRES_TYPES = {"json": "jsonb"}
DUCKDB_SCHEMAS = dict.fromkeys(TEMPLATE_SCHEMAS, "main")  # today's layout; separate schemas come next
DUCKDB_TYPES = {"json": "json"}

RAW_DDL = render_ddl(RAW_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)
QUARANTINE_DDL = render_ddl(QUARANTINE_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)
TAGS_DDL = render_ddl(TAGS_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)
OPS_DDL = render_ddl(OPS_TEMPLATE, DUCKDB_SCHEMAS, DUCKDB_TYPES)


def ensure_raw_tables(con: Any) -> None:
    """Create the raw, quarantine and tag tables on a DuckDB connection (idempotent)."""
    con.execute(RAW_DDL)
    for source in SOURCES:
        con.execute(QUARANTINE_DDL.format(source=source))
    con.execute(TAGS_DDL)
    con.execute(QUARANTINE_DDL.format(source="manual_tags"))


def ensure_ops_tables(con: Any) -> None:
    """Create the operational tables on a DuckDB connection (idempotent)."""
    con.execute(OPS_DDL)
    # Warehouses created before delivery_events.user_id existed get the column added.
    con.execute("alter table delivery_events add column if not exists user_id varchar")
