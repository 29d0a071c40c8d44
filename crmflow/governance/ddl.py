"""DDL of the governance tables (migration 60, schema {ops}; contract: docs/data-contracts.md
section 5, workflow: docs/journeys.md "Governance"). Imports nothing from crmflow.warehouse:
migrations.py imports it."""

from __future__ import annotations

# governance_audit.action values.
AUDIT_ACTIONS = ("approve", "enable", "disable")

GOVERNANCE_TEMPLATE = """
create table if not exists {ops}.journey_approvals (
    approval_id varchar primary key,       -- sha256(journey_id|version|approver)
    journey_id varchar not null,
    version varchar not null,              -- sha256 of the journey file and its templates (hex)
    approver varchar not null,             -- person id in marketing/roles.yaml
    authors varchar not null,              -- who wrote this version (comma-separated ids/emails), at approval time
    comment varchar,
    approved_at timestamptz not null
);
create table if not exists {ops}.governance_audit (
    audit_id varchar primary key,          -- sha256(action|journey_id|version|actor|recorded_at)
    action varchar not null,               -- approve | enable | disable
    journey_id varchar not null,
    version varchar,                       -- the version approved, or current when enabled/disabled
    actor varchar not null,                -- person id in marketing/roles.yaml
    detail varchar,                        -- the comment or reason given
    recorded_at timestamptz not null
)
"""
