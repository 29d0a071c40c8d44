-- Entered/left history of customer_segments, one row per (user, family, segment) stay:
-- valid_from = as-of of the run that first saw the user in the segment, valid_to = as-of of the
-- run that saw the user leave it (null = still in it). "Entered X in the latest run":
--   select user_id from customer_segment_history
--   where segment_family = 'rfm' and segment = 'at_risk'
--     and valid_from = (select max(as_of) from customer_segments)
{#- tag cumulative_state: spells accumulate across runs (docs/architecture.md "Lineage and state") -#}
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key=['user_id', 'segment_family', 'valid_from'],
    on_schema_change='fail',
    tags=['cumulative_state']
) }}
{{ history_scd(ref('customer_segments'), ['segment'], key_columns=['user_id', 'segment_family']) }}
