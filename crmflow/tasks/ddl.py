"""Operator task tables owned by the project (migration 31), portable DDL rendered per engine.

State (tasks, rule runs, push versions) lives in {ops}; outcomes loaded from landing files, their
quarantine and file ledger in {raw}.
"""

TASK_STATE_TEMPLATE = """
create table if not exists {ops}.operator_tasks (
    task_id varchar not null,           -- deterministic: md5 of rule|user|day, request key, or expired task
    user_id varchar not null,
    operator_id varchar,                -- null while unassigned
    rule varchar not null,              -- task rule id, or journey:<journey_id>
    policy varchar not null,            -- rule id, or queue:<queue> for journey tasks
    source varchar not null,            -- recall | reassign | journey
    recall_reason varchar,
    priority double precision not null, -- expected value of following up (value at risk, else RFM/revenue)
    created_at timestamptz not null,
    assigned_at timestamptz,
    due_at timestamptz not null,
    expires_at timestamptz not null,
    status varchar not null,            -- open | done | no_answer | converted | expired | unassigned
    status_updated_at timestamptz not null,
    reassigned_from varchar,
    journey_id varchar,
    step_id varchar,
    note varchar,
    context {json}                      -- profile, lifecycle, last orders, risk, talking points
);
create table if not exists {ops}.operator_task_rule_runs (
    rule varchar not null,
    ran_at timestamptz not null,
    recalled bigint not null,
    created bigint not null,
    assigned bigint not null
);
create table if not exists {ops}.operator_task_pushes (
    task_id varchar primary key,
    status varchar not null,                 -- the status the endpoint last accepted
    status_updated_at timestamptz not null,  -- ... and its version (operator_tasks.status_updated_at)
    pushed_at timestamptz not null
);
"""

# Outcomes loaded from landing files, their quarantine and file ledger; also created alone on a raw
# DuckDB connection (tasks/outcomes.py OUTCOMES_DDL) by tests that build the dbt inputs by hand.
TASK_OUTCOMES_TEMPLATE = """
create table if not exists {raw}.task_outcomes (
    task_id varchar not null,
    operator_id varchar,
    outcome varchar not null,          -- done | no_answer | converted
    handled_at timestamptz not null,
    handling_seconds bigint not null,
    notes varchar,
    source_file varchar not null,
    line_number bigint not null,
    loaded_at timestamptz not null
);
create table if not exists {raw}.quarantine_task_outcomes (
    source_file varchar not null,
    line_number bigint,
    raw_content varchar,
    reason varchar not null,
    field varchar,
    quarantined_at timestamptz not null
);
create table if not exists {raw}.task_outcome_files (
    path varchar not null,
    content_hash varchar not null,
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_quarantined bigint not null,
    loaded_at timestamptz not null
);
"""

# migration 31: the whole set
TASKS_TEMPLATE = TASK_STATE_TEMPLATE + TASK_OUTCOMES_TEMPLATE
