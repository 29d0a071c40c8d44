-- Orders placed up to as_of, classified once so every mart agrees on what a purchase is.
-- A purchase is an order in a paid status with a positive amount: zero-amount orders (free samples,
-- 100% vouchers) are not purchases. Refunded and cancelled orders are not purchases either; the
-- raw table keeps the latest order state, so an order refunded after as_of counts as refunded.
with orders as (

    select * from {{ ref('stg_shop__orders') }}
    where ordered_at <= {{ as_of_ts() }}

), classified as (

    select
        order_id,
        user_id,
        ordered_at,
        {{ business_date('ordered_at') }} as order_date,
        status,
        amount,
        status in {{ sql_in_list(var('paid_order_statuses')) }} and amount > 0 as is_purchase,
        status in {{ sql_in_list(var('refunded_order_statuses')) }} as is_refunded,
        status in {{ sql_in_list(var('cancelled_order_statuses')) }} as is_cancelled

    from orders

)

select * from classified
