-- Exclusive system segments as of var('as_of'): exactly one segment per user per family.
-- Definitions in words: seed segment_definitions. Changes over time: customer_segment_history.
-- The coverage tests (tests/segments/) read customer_profile and segment_definitions too; naming
-- them as parents makes those tests run in this model's step (buildable indirect selection,
-- orchestration/dbt.py), so their asset checks get a result instead of a warning per step.
-- depends_on: {{ ref('customer_profile') }}
-- depends_on: {{ ref('segment_definitions') }}
with memberships as (

    select * from {{ ref('int_segment_memberships') }}

), final as (

    select
        user_id,
        segment_family,
        segment,
        {{ as_of_ts() }} as as_of
    from memberships

)

select * from final
