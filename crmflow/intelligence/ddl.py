"""The intelligence tables crmflow keeps as state (migrations 40 and 41, crmflow/warehouse/migrations.py).

The outputs (customer_clusters, customer_churn_scores, customer_recommendations, customer_priority)
are not here: each run replaces them whole from Arrow (crmflow.intelligence.tables). This module
imports nothing from crmflow.warehouse, so the migrations can import it.
"""

from __future__ import annotations

# Migration 40 (crmflow/warehouse/migrations.py). fit, trained_as_of and signature came with the
# retraining cadence; warehouses created before it get them from the `add column if not exists`.
MODEL_RUNS_TEMPLATE = """
create table if not exists {ops}.intelligence_model_runs (
    model_name varchar not null,      -- churn | clustering | recommendations
    model_version varchar not null,
    as_of timestamptz not null,
    data_cutoff timestamptz,          -- the newest data the fitted model saw
    decision varchar not null,        -- e.g. model | baseline | insufficient_data
    params {json},
    metrics {json},
    artifact_path varchar,
    primary key (model_name, as_of)
);
alter table {ops}.intelligence_model_runs add column if not exists fit varchar;  -- trained | reused
-- the as-of of the run that fitted the model in use
alter table {ops}.intelligence_model_runs add column if not exists trained_as_of timestamptz;
-- hash of the parameters and the package source, no cutoff
alter table {ops}.intelligence_model_runs add column if not exists signature varchar;
"""

# Migration 41 (crmflow/warehouse/migrations.py): the centroids of every run, the previous run's
# being what new clusters are matched against.
CENTROIDS_TEMPLATE = """
create table if not exists {ops}.intelligence_cluster_centroids (
    as_of timestamptz not null,
    cluster_id integer not null,
    cluster_label varchar not null,
    size bigint not null,
    feature varchar not null,          -- transformed feature (log1p where heavy-tailed), not standardised
    value double precision
)
"""

# Migration 42 (crmflow/warehouse/migrations.py): the output dbt reads as a source
# (int_segment_memberships, source crm_intelligence.customer_clusters), created empty up front so
# a dbt build finds it before clustering has ever run. The columns are CLUSTERS_SCHEMA
# (crmflow/intelligence/tables.py); each run empties and refills it.
CLUSTERS_OUTPUT_TEMPLATE = """
create table if not exists {analytics}.customer_clusters (
    user_id varchar,
    cluster_id integer,
    cluster_label varchar,
    distance double precision,
    as_of timestamptz
)
"""
