"""The measurement tables (contract: docs/data-contracts.md section 9), as portable migrations.

Migration 45 created all five measurement tables. Since migration 46 attribution, the funnel and the
conversion trend are dbt models (dbt_project/models/marts/measurement), so 46 drops the tables 45 made
for them (dbt creates its own) and adds the two operational tables the models read: the journeys'
goals from marketing YAML, written by Python (crmflow/measurement/goals.py). journey_uplift and
journey_ab_results stay Python tables (scipy statistics over the dbt input models), rebuilt whole on
every run in one transaction. The Arrow schemas are those of the tables Python writes, in table order.
"""

from __future__ import annotations

import pyarrow as pa

MEASUREMENT_TEMPLATE = """
drop table if exists {analytics}.journey_order_attribution;
create table {analytics}.journey_order_attribution (
    order_id varchar primary key,       -- a paid order is credited to at most one message
    user_id varchar not null,
    ordered_at timestamptz not null,
    amount decimal(18, 2),
    message_key varchar not null,
    journey_id varchar not null,
    step_id varchar not null,
    variant varchar not null,           -- '-' for a step without A/B variants
    channel varchar,
    sent_at timestamptz not null,
    as_of timestamptz not null
);
drop table if exists {analytics}.journey_attribution;
create table {analytics}.journey_attribution (
    journey_id varchar not null,
    step_id varchar not null,
    variant varchar not null,
    sent bigint not null,
    delivered bigint not null,
    opened bigint not null,
    clicked bigint not null,
    bounced bigint not null,
    unsubscribed bigint not null,
    converted bigint not null,
    attributed_orders bigint not null,
    revenue decimal(18, 2) not null,
    conversion_rate double precision not null,
    as_of timestamptz not null,
    primary key (journey_id, step_id, variant)
);
drop table if exists {analytics}.journey_conversion_trend;
create table {analytics}.journey_conversion_trend (
    journey_id varchar not null,
    send_date date not null,
    days_since_send integer not null,
    sent bigint not null,
    converted_cumulative bigint not null,
    converted_share double precision not null,
    as_of timestamptz not null,
    primary key (journey_id, send_date, days_since_send)
);
drop table if exists {analytics}.journey_uplift;
create table {analytics}.journey_uplift (
    journey_id varchar primary key,
    goal varchar,
    treated_enrolments bigint,
    treated_converted bigint,
    treated_rate double precision,
    holdout_enrolments bigint,
    holdout_converted bigint,
    holdout_rate double precision,
    uplift_abs double precision,
    uplift_ci_low double precision,
    uplift_ci_high double precision,
    uplift_rel double precision,
    p_value double precision,
    significant boolean,
    treated_revenue_per_enrolment double precision,
    holdout_revenue_per_enrolment double precision,
    incremental_revenue double precision,
    status varchar,
    note varchar,
    as_of timestamptz
);
drop table if exists {analytics}.journey_ab_results;
create table {analytics}.journey_ab_results (
    journey_id varchar not null,
    step_id varchar not null,
    variant varchar not null,
    sent bigint,
    converted bigint,
    revenue double precision,
    conversion_rate double precision,
    rate_ci_low double precision,
    rate_ci_high double precision,
    reference_variant varchar,
    is_reference boolean,
    diff_vs_reference double precision,
    diff_ci_low double precision,
    diff_ci_high double precision,
    z double precision,
    p_value double precision,
    significant boolean,
    verdict varchar,
    as_of timestamptz,
    primary key (journey_id, step_id, variant)
);
"""

GOALS_TEMPLATE = """
drop table if exists {analytics}.journey_order_attribution;
drop table if exists {analytics}.journey_attribution;
drop table if exists {analytics}.journey_conversion_trend;
create table if not exists {ops}.journey_goals (
    journey_id varchar primary key,     -- a configured journey (marketing/journeys/*.yaml)
    goal_kind varchar not null,         -- order | event
    goal_event varchar,                 -- the event name of an event goal
    window_seconds bigint not null,     -- the goal window after the trigger (uplift) or the send (attribution)
    goal_label varchar not null         -- how the report names the goal
);
create table if not exists {ops}.journey_goal_statuses (
    journey_id varchar not null,        -- order statuses that reach the journey's order goal
    status varchar not null,
    primary key (journey_id, status)
);
"""

TEXT, INT, FLOAT, FLAG, INSTANT = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us", tz="UTC")

GOALS_SCHEMA = pa.schema([("journey_id", TEXT), ("goal_kind", TEXT), ("goal_event", TEXT),
                          ("window_seconds", INT), ("goal_label", TEXT)])
GOAL_STATUSES_SCHEMA = pa.schema([("journey_id", TEXT), ("status", TEXT)])
UPLIFT_SCHEMA = pa.schema([
    ("journey_id", TEXT), ("goal", TEXT),
    ("treated_enrolments", INT), ("treated_converted", INT), ("treated_rate", FLOAT),
    ("holdout_enrolments", INT), ("holdout_converted", INT), ("holdout_rate", FLOAT),
    ("uplift_abs", FLOAT), ("uplift_ci_low", FLOAT), ("uplift_ci_high", FLOAT), ("uplift_rel", FLOAT),
    ("p_value", FLOAT), ("significant", FLAG),
    ("treated_revenue_per_enrolment", FLOAT), ("holdout_revenue_per_enrolment", FLOAT),
    ("incremental_revenue", FLOAT), ("status", TEXT), ("note", TEXT), ("as_of", INSTANT),
])
AB_SCHEMA = pa.schema([
    ("journey_id", TEXT), ("step_id", TEXT), ("variant", TEXT),
    ("sent", INT), ("converted", INT), ("revenue", FLOAT),
    ("conversion_rate", FLOAT), ("rate_ci_low", FLOAT), ("rate_ci_high", FLOAT),
    ("reference_variant", TEXT), ("is_reference", FLAG),
    ("diff_vs_reference", FLOAT), ("diff_ci_low", FLOAT), ("diff_ci_high", FLOAT),
    ("z", FLOAT), ("p_value", FLOAT), ("significant", FLAG), ("verdict", TEXT), ("as_of", INSTANT),
])
