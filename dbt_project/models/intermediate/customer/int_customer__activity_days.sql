-- One row per user and business calendar day with any activity up to as_of: a stitched event or an
-- order in any status. is_purchase_day marks days with a purchase. Lifecycle gaps are measured on
-- these days.
with event_days as (

    select user_id, activity_date
    from {{ ref('int_customer__event_days') }}

), order_days as (

    select
        user_id,
        order_date as activity_date,
        max(case when is_purchase then 1 else 0 end) as has_purchase
    from {{ ref('int_customer__orders') }}
    group by user_id, order_date

), all_days as (

    select user_id, activity_date, 0 as has_purchase from event_days
    union all
    select user_id, activity_date, has_purchase from order_days

), activity_days as (

    select
        user_id,
        activity_date,
        max(has_purchase) = 1 as is_purchase_day

    from all_days
    group by user_id, activity_date

)

select * from activity_days
