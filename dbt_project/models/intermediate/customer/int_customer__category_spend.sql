-- Spend per user and category on purchase orders up to as_of (order lines of paid, positive orders).
with purchases as (

    select order_id from {{ ref('int_customer__orders') }}
    where is_purchase

), lines as (

    select items.user_id, items.category, items.line_amount
    from {{ ref('stg_shop__order_items') }} as items
    inner join purchases on items.order_id = purchases.order_id
    where items.category is not null

), category_spend as (

    select
        user_id,
        category,
        sum(line_amount) as spend,
        count(*) as line_count

    from lines
    group by user_id, category

)

select * from category_spend
