-- One row per user per (value_tier, b2b_grade) spell (see the history_scd macro for the rules).
{#- tag cumulative_state: spells accumulate across runs (docs/architecture.md "Lineage and state") -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'valid_from'],
    on_schema_change='fail',
    tags=['cumulative_state']
) }}

{{ history_scd(ref('customer_value_tier'), ['value_tier', 'b2b_grade']) }}
