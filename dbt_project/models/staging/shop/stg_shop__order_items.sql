-- One row per element of the order's items JSON array. line_amount is the item's own line_amount
-- when sent, else quantity * unit_price; "price"/"qty" are accepted spellings of the item fields.
with orders as (

    select * from {{ ref('stg_shop__orders') }}

), items as (

    select
        orders.order_id,
        orders.user_id,
        orders.ordered_at,
        orders.status,
        item_index as line_number,
        {{ json_text('item', ['sku']) }} as sku,
        {{ json_text('item', ['category']) }} as category,
        cast(coalesce(
            {{ json_text('item', ['quantity']) }}, {{ json_text('item', ['qty']) }}, '1'
        ) as {{ dbt.type_int() }}) as quantity,
        cast(coalesce(
            {{ json_text('item', ['unit_price']) }}, {{ json_text('item', ['price']) }}
        ) as decimal(18, 2)) as unit_price,
        cast({{ json_text('item', ['line_amount']) }} as decimal(18, 2)) as sent_line_amount

    from orders
    {{ json_array_elements('orders.items', 'item', 'item_index') }}

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
        unit_price,
        cast(coalesce(sent_line_amount, quantity * unit_price) as decimal(18, 2)) as line_amount

    from items

)

select * from final
