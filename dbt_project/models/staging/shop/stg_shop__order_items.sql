-- One row per element of the order's items JSON array. line_amount is the item's own line_amount
-- when sent, else quantity * unit_price; "price"/"qty" are accepted spellings of the item fields.
-- unit_price and line_amount are in the reporting currency (the order's fx_rate, see
-- stg_shop__orders; null when the order's currency has no rate); the delivered figures stay in
-- unit_price_original / line_amount_original (in the order's currency).
-- A table, unlike the other staging models: unnesting and parsing every order's JSON is the costly
-- part (about 3M orders at 1M users), and two models, four tests and the intelligence features read
-- the lines; as a view each of them parsed the JSON again.
{{ config(materialized='table') }}
with orders as (

    select * from {{ ref('stg_shop__orders') }}

), items as (

    select
        orders.order_id,
        orders.user_id,
        orders.ordered_at,
        orders.status,
        orders.currency,
        orders.fx_rate,
        item_index as line_number,
        {{ json_element_text('item', 'sku') }} as sku,
        {{ json_element_text('item', 'category') }} as category,
        cast(coalesce(
            {{ json_element_text('item', 'quantity') }}, {{ json_element_text('item', 'qty') }}, '1'
        ) as {{ dbt.type_int() }}) as quantity,
        cast(coalesce(
            {{ json_element_text('item', 'unit_price') }}, {{ json_element_text('item', 'price') }}
        ) as decimal(18, 2)) as unit_price_original,
        cast({{ json_element_text('item', 'line_amount') }} as decimal(18, 2)) as sent_line_amount

    from orders
    {{ json_array_records('orders.items', 'item', 'item_index',
        ['sku', 'category', 'quantity', 'qty', 'unit_price', 'price', 'line_amount']) }}

), lines as (

    select
        *,
        cast(coalesce(sent_line_amount, quantity * unit_price_original) as decimal(18, 2))
            as line_amount_original

    from items

), final as (

    select
        order_id,
        user_id,
        ordered_at,
        status,
        line_number,
        sku,
        category,
        quantity,
        {{ to_reporting_currency('unit_price_original', 'fx_rate') }} as unit_price,
        {{ to_reporting_currency('line_amount_original', 'fx_rate') }} as line_amount,
        currency,
        unit_price_original,
        line_amount_original

    from lines

)

select * from final
