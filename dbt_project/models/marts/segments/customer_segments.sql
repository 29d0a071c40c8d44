-- Exclusive system segments as of var('as_of'): exactly one segment per user per family.
-- Definitions in words: seed segment_definitions. Changes over time: customer_segment_history.
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
