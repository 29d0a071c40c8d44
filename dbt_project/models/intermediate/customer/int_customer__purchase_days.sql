-- One row per user and business-time-zone calendar day with at least one purchase up to as_of;
-- several orders on one day are summed into one purchase day (the RFM unit).
with purchases as (

    select * from {{ ref('int_customer__orders') }}
    where is_purchase

), purchase_days as (

    select
        user_id,
        order_date as purchase_date,
        count(*) as order_count,
        -- typed: sum() of a decimal(18, 2) is decimal(38, 2) on DuckDB, numeric of any scale on PostgreSQL
        cast(sum(amount) as decimal(18, 2)) as day_amount

    from purchases
    group by user_id, order_date

)

select * from purchase_days
