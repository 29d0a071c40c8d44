"""DDL for in-flight claims and settled outcomes (migration 55, schema {ops}; contract:
docs/data-contracts.md section 5 and docs/reliability.md).

send_ledger gains the claim's lease (worker_id, lease_until), how far the attempt got (outcome),
the delivery event that settled an unknown outcome (event_id, settled_at) and how often it was resent
after one (resends). dispatch_channels holds one row per channel shared by every dispatch worker: the
provider rate limit as a GCRA theoretical arrival time and a pause after a 429 Retry-After (both in
epoch seconds of the workers' wall clock). This module imports nothing from crmflow.warehouse.
"""

from __future__ import annotations

# The ledger state this migration adds (crmflow/journeys/tables.py LEDGER_STATES lists it).
NEW_LEDGER_STATES = ("lost",)
# send_ledger.outcome while a row is claimed, and after it is recorded.
OUTCOMES = ("claimed", "requested", "sent", "failed", "unknown", "released", "lost")

LEASE_TEMPLATE = """
-- state (new in migration 55): lost -- an unknown outcome with no delivery event within the grace period
alter table {ops}.send_ledger add column if not exists worker_id varchar;
alter table {ops}.send_ledger add column if not exists lease_until timestamptz;
alter table {ops}.send_ledger add column if not exists outcome varchar;
alter table {ops}.send_ledger add column if not exists event_id varchar;
alter table {ops}.send_ledger add column if not exists settled_at timestamptz;
alter table {ops}.send_ledger add column if not exists resends integer default 0;
create table if not exists {ops}.dispatch_channels (
    channel varchar primary key,
    tat double precision not null,          -- GCRA: epoch seconds of the next free slot (rate limit)
    paused_until double precision not null, -- epoch seconds: no request before this (429 Retry-After)
    pause_reason varchar,
    updated_at timestamptz
)
"""
