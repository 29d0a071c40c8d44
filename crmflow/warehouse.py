"""DuckDB warehouse access: one place that opens connections and owns the raw-table DDL.

DuckDB allows one writer process per file, so every writer opens, works and closes; the Dagster job
runs in one process (in_process_executor) so steps never write at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

# Raw tables written by ingestion (the contract is in docs/data-contracts.md). Every raw row keeps
# its lineage: the file and line it came from and the run that loaded it.
RAW_DDL = """
create table if not exists raw_events (
    -- unique by construction (first-copy-wins dedupe in connectors/sources/merge.py, tested; dbt's
    -- unique test on stg_tracking__events); no PRIMARY KEY index: it cost ~13 % of the events load
    message_id varchar not null,
    type varchar not null,
    event varchar,
    user_id varchar,
    anonymous_id varchar,
    event_at timestamptz not null,
    properties json,
    context json,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null
);
create table if not exists raw_registrations (
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
create table if not exists raw_orders (
    order_id varchar primary key,
    user_id varchar not null,
    ordered_at timestamptz not null,
    updated_at timestamptz not null,
    status varchar not null,
    amount decimal(18, 2) not null,
    currency varchar not null,
    items json,
    channel varchar,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null
);
create table if not exists ingested_files (
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
alter table ingested_files add column if not exists file_size bigint;
alter table ingested_files add column if not exists mtime_ns bigint;
"""

QUARANTINE_DDL = """
create table if not exists quarantine_{source} (
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
TAGS_DDL = """
create table if not exists raw_manual_tags (
    user_id varchar not null,
    tag varchar not null,
    added_by varchar not null,
    added_at timestamptz not null,
    _source_file varchar not null,
    _source_line bigint not null,
    _loaded_at timestamptz not null,
    primary key (user_id, tag)
);
create table if not exists tag_rules (
    tag varchar not null,
    description varchar not null,
    condition_no integer not null,
    field varchar not null,
    operator varchar not null,
    value_num double,
    value_text varchar,
    loaded_at timestamptz not null,
    primary key (tag, condition_no)
);
"""

# Operational tables shared by the channels (writers) and the journey policies (readers).
OPS_DDL = """
create table if not exists suppression_list (
    channel varchar not null,          -- email | sms | push | all
    address varchar not null,          -- email (lower-case), E.164 phone, push token, or user_id for 'all'
    user_id varchar,
    reason varchar not null,           -- unsubscribe | bounce | spamreport | dropped | dead_token | erased | manual
    source varchar not null,           -- sendgrid | twilio | fcm | privacy | manual
    suppressed_at timestamptz not null,
    primary key (channel, address)
);
create table if not exists delivery_events (
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
create table if not exists delivery_event_files (
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


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its folder), yield a connection and always close it."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    # Session time zone UTC: timestamptz values print and cast the same on every machine.
    con.execute("set TimeZone = 'UTC'")
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All of the block or none of it: begin, commit on success, roll back and re-raise on error."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(RAW_DDL)
    for source in SOURCES:
        con.execute(QUARANTINE_DDL.format(source=source))
    con.execute(TAGS_DDL)
    con.execute(QUARANTINE_DDL.format(source="manual_tags"))


def ensure_ops_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(OPS_DDL)
    # Warehouses created before delivery_events.user_id existed get the column added.
    con.execute("alter table delivery_events add column if not exists user_id varchar")
