-- Orders (latest state per order_id) renamed to the contract; status lower-cased so the status
-- lists in dbt_project.yml vars match whatever case the shop sends.
with source as (

    select * from {{ source('raw', 'raw_orders') }}

), renamed as (

    select
        order_id,
        user_id,
        ordered_at,
        updated_at,
        lower(trim(status)) as status,
        amount,
        upper(currency) as currency,
        channel,
        items,
        _source_file,
        _loaded_at

    from source

)

select * from renamed
