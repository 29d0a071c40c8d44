-- One row per element of the order's items JSON array. line_amount is the item's own line_amount
-- when sent, else quantity * unit_price; "price"/"qty" are accepted spellings of the item fields.
-- unit_price and line_amount are in the reporting currency (the order's fx_rate, see
-- stg_shop__orders; null when the order's currency has no rate); the delivered figures stay in
-- unit_price_original / line_amount_original (in the order's currency).
-- A table, unlike the other staging models: unnesting and parsing every order's JSON is the costly
-- part (about 3M orders at 1M users), and two models, four tests and the intelligence features read
-- the lines; as a view each of them parsed the JSON again.
--
-- Incremental (docs/data-contracts.md section 3): raw_orders holds one row per order_id (the
-- newest version, last write wins by updated_at), so a run only re-unnests the orders whose row
-- changed since the previous build and replaces all of their lines (delete+insert by order_id).
-- The post-hook keeps <this>__watermark: one row per raw_orders row, its version (order_id,
-- updated_at, _loaded_at) and the conversion version (macro order_conversion_version: the fx_rates
-- seed and var reporting_currency), plain values, the same on every engine. Changed orders: rows
-- whose version is not in the watermark (a new order, a new version such as a status change or a
-- refund, also a back-dated load; every order when a rate or the reporting currency changed);
-- raw_orders is read from the earliest _loaded_at of a changed row on. Each of them also gets a
-- tombstone row (line_number null), so an order whose new version has no lines still loses its old
-- ones; the post-hook deletes the tombstones. Full rebuild (every order, and a tombstone for every
-- order of the table) instead when the watermark is missing, has another shape (an older crmflow's
-- hashes), or one of its orders is gone from raw_orders (the table was rewritten).
{{ config(
    materialized=incremental_or_table(),
    incremental_strategy='delete+insert',
    unique_key='order_id',
    on_schema_change='fail',
    post_hook=[] if target.type == 'spark' else [
        "delete from {{ this }} where line_number is null",
        "{{ replace_table_as(this.incorporate(path={'identifier': this.identifier ~ '__watermark'}),
            'select order_id, updated_at, _loaded_at, ' ~ order_conversion_version() ~ ' as conversion from '
            ~ source('raw', 'raw_orders')) }}",
    ],
) }}

{%- set mode = 'full' -%}
{%- if is_incremental() and execute -%}
    {%- set wm_rel = adapter.get_relation(database=this.database, schema=this.schema,
                                          identifier=this.identifier ~ '__watermark') -%}
    {%- set mode = 'rebuild' -%}
    {%- if wm_rel is not none and 'conversion' in adapter.get_columns_in_relation(wm_rel)
                                                   | map(attribute='name') | map('lower') | list -%}
        {#- orders gone from raw_orders, and the earliest _loaded_at of a changed row: the model
            reads raw_orders from there on (zone maps skip the older row groups) -#}
        {%- set wm = run_query(
            "select count(case when r.order_id is null then 1 end),
                    cast(min(case when w.order_id is null or w.updated_at <> r.updated_at
                                       or w._loaded_at <> r._loaded_at or w.conversion <> c.conversion
                                  then r._loaded_at end) as " ~ dbt.type_string() ~ ")
             from " ~ source('raw', 'raw_orders') ~ " r
             full join " ~ wm_rel ~ " w on r.order_id = w.order_id
             cross join (select " ~ order_conversion_version() ~ " as conversion) c").rows[0] -%}
        {%- if wm[0] == 0 -%}
            {%- set mode = 'incremental' if wm[1] is not none else 'nothing' -%}
            {%- set changed_from = wm[1] -%}
        {%- endif -%}
    {%- endif -%}
{%- endif %}
with orders as (

    select * from {{ ref('stg_shop__orders') }}
    {%- if mode == 'incremental' %}
    where _loaded_at >= cast('{{ changed_from }}' as {{ type_timestamptz() }})
        and order_id in (
            -- rows whose version is not in the watermark. A left join keeping the unmatched rows
            -- is portable and DuckDB plans it as an anti join; "not exists" on a hash expression
            -- became a mark join there (3x slower on 3M orders)
            select raw.order_id from {{ source('raw', 'raw_orders') }} as raw
            left join {{ this.incorporate(path={'identifier': this.identifier ~ '__watermark'}) }} as wm
                on wm.order_id = raw.order_id and wm.updated_at = raw.updated_at
                and wm._loaded_at = raw._loaded_at and wm.conversion = {{ order_conversion_version() }}
            where raw._loaded_at >= cast('{{ changed_from }}' as {{ type_timestamptz() }})
                and wm.order_id is null
        )
    {%- elif mode == 'nothing' %}
    where false
    {%- endif %}

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

{%- if mode == 'full' %}

select * from final
{%- else %}

select * from final
union all
-- a tombstone (line_number null) per order (re)computed here, or no longer in raw_orders: the
-- delete+insert removes all of the order's old lines, the post-hook deletes the tombstone
-- (typed nulls for the decimals: a bare null would turn the union's decimal(18, 2) into an
-- unconstrained numeric on PostgreSQL and fail on_schema_change)
select
    tombstones.order_id,
    null, null, null, null, null, null, null,
    cast(null as decimal(18, 2)), cast(null as decimal(18, 2)), null,
    cast(null as decimal(18, 2)), cast(null as decimal(18, 2))
from (
    select order_id from orders
    {%- if mode == 'rebuild' %}
    union
    select order_id from {{ this }}
    {%- endif %}
) as tombstones
{%- endif %}
