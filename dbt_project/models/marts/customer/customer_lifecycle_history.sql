-- One row per user per lifecycle stage spell (see the history_scd macro for the rules).
-- Users who entered stage X at this run: where lifecycle_stage = 'X' and valid_from = <as_of>.
{#- tag cumulative_state: spells accumulate across runs (docs/architecture.md "Lineage and state") -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'valid_from'],
    on_schema_change='fail',
    tags=['cumulative_state']
) }}

{{ history_scd(ref('customer_lifecycle'), ['lifecycle_stage']) }}
