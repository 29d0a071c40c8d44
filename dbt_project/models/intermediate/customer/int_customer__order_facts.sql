-- Per-user order facts up to as_of: purchases (first/last, count, revenue), refunds, cancellations
-- and the time of the user's latest order in any status (activity).
with orders as (

    select * from {{ ref('int_customer__orders') }}

), order_facts as (

    select
        user_id,
        min(case when is_purchase then ordered_at end) as first_order_at,
        max(case when is_purchase then ordered_at end) as last_order_at,
        sum(case when is_purchase then 1 else 0 end) as order_count,
        cast(coalesce(sum(case when is_purchase then amount end), 0) as decimal(18, 2)) as revenue,
        sum(case when is_refunded then 1 else 0 end) as refunded_orders,
        sum(case when is_cancelled then 1 else 0 end) as cancelled_orders,
        max(ordered_at) as last_any_order_at

    from orders
    group by user_id

)

select * from order_facts
