-- Orders (latest state per order_id) renamed to the contract; status lower-cased so the status
-- lists in dbt_project.yml vars match whatever case the shop sends.
-- Currency: amount is converted here, once, into the reporting currency (var reporting_currency)
-- with the static reference rates of seed fx_rates, so every model and Python consumer downstream
-- adds like with like. The delivered figure stays in amount_original (in currency). The factor is
-- a cross rate, rate(currency) / rate(reporting_currency), so the seed only has to be consistent
-- against one base and any seeded currency can be the reporting one. An order whose currency has
-- no rate keeps amount null: it is not a purchase and adds no revenue anywhere; the warning test
-- assert_orders_currency_has_fx_rate lists such orders.
with source as (

    select * from {{ source('raw', 'raw_orders') }}

), fx_rates as (

    select upper(trim(currency)) as currency, rate_to_reporting from {{ ref('fx_rates') }}

), reporting_rate as (

    select rate_to_reporting
    from fx_rates
    where currency = upper(trim('{{ var("reporting_currency") }}'))

), renamed as (

    select
        source.order_id,
        source.user_id,
        source.ordered_at,
        source.updated_at,
        lower(trim(source.status)) as status,
        source.amount as amount_original,
        upper(trim(source.currency)) as currency,
        source.channel,
        source.items,
        source._source_file,
        source._loaded_at

    from source

), converted as (

    select
        renamed.*,
        -- Same currency: factor exactly 1 (no float round trip); no rate: null.
        case
            when renamed.currency = upper(trim('{{ var("reporting_currency") }}')) then 1.0
            else cast(fx_rates.rate_to_reporting as {{ type_double() }})
                / cast(reporting_rate.rate_to_reporting as {{ type_double() }})
        end as fx_rate

    from renamed
    left join fx_rates on renamed.currency = fx_rates.currency
    left join reporting_rate on true

), final as (

    select
        order_id,
        user_id,
        ordered_at,
        updated_at,
        status,
        {{ to_reporting_currency('amount_original', 'fx_rate') }} as amount,
        currency,
        amount_original,
        fx_rate,
        channel,
        items,
        _source_file,
        _loaded_at

    from converted

)

select * from final
