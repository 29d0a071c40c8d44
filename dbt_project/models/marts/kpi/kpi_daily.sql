-- One row per business-time-zone calendar day, from the first day with data up to the as-of date.
--   active_users  distinct users with any activity that day (a stitched event or an order in any status)
--   new_users     registrations that day
--   paying_users  distinct users with a purchase that day (purchase = int_customer__orders.is_purchase)
--   orders        purchases that day; revenue = their amount (reporting currency, converted in staging)
--   arpu          revenue / active_users; arppu = revenue / paying_users (null when the divisor is 0)
-- Incremental: a run recomputes only the last var('kpi_daily_lookback_days', 3) days before the
-- as-of date (plus that date, and any days after the last stored day) from the full sources and replaces them; older days keep their
-- stored values, so data arriving later than the look-back needs --full-refresh. Given the same
-- data, incremental runs and a full refresh give the same rows (tests/test_dbt_segments_kpi.py).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='date_day',
    on_schema_change='fail'
) }}
{%- set lookback = var('kpi_daily_lookback_days', 3) %}
with activity as (

    select user_id, activity_date from {{ ref('int_customer__activity_days') }}

), purchases as (

    select order_date, user_id, amount
    from {{ ref('int_customer__orders') }}
    where is_purchase

), registrations as (

    select {{ business_date('registered_at') }} as registration_date
    from {{ ref('customer_profile') }}
    where registered_at is not null

), first_days as (

    select min(activity_date) as first_date from activity
    union all
    select min(registration_date) from registrations

), first_day as (

    select min(first_date) as first_date from first_days

), bounds as (

    -- Incremental: from the earlier of (the day after the last stored day, the look-back start),
    -- never before the first day with data, so no day is skipped between two runs.
    select
        {% if is_incremental() -%}
        case
            when first_day.first_date > window_start.start_date then first_day.first_date
            else window_start.start_date
        end as start_date,
        {%- else -%}
        first_day.first_date as start_date,
        {%- endif %}
        {{ as_of_date() }} as end_date
    from first_day
    {% if is_incremental() -%}
    cross join (
        select case
            when max(date_day) is not null
                and cast({{ dbt.dateadd('day', 1, 'max(date_day)') }} as date)
                    < cast({{ dbt.dateadd('day', -lookback, as_of_date()) }} as date)
                then cast({{ dbt.dateadd('day', 1, 'max(date_day)') }} as date)
            else cast({{ dbt.dateadd('day', -lookback, as_of_date()) }} as date)
        end as start_date
        from {{ this }}
    ) as window_start
    {%- endif %}

), days as (

    {{ kpi_day_spine('bounds') }}

), daily_active as (

    select activity_date as date_day, count(distinct user_id) as active_users
    from activity
    where activity_date >= (select start_date from bounds)
    group by activity_date

), daily_purchases as (

    select
        order_date as date_day,
        count(distinct user_id) as paying_users,
        count(*) as orders,
        sum(amount) as revenue
    from purchases
    where order_date >= (select start_date from bounds)
    group by order_date

), daily_new as (

    select registration_date as date_day, count(*) as new_users
    from registrations
    where registration_date >= (select start_date from bounds)
    group by registration_date

), final as (

    select
        days.date_day,
        coalesce(daily_active.active_users, 0) as active_users,
        coalesce(daily_new.new_users, 0) as new_users,
        coalesce(daily_purchases.paying_users, 0) as paying_users,
        coalesce(daily_purchases.orders, 0) as orders,
        cast(coalesce(daily_purchases.revenue, 0) as decimal(18, 2)) as revenue,
        {{ round_double('cast(coalesce(daily_purchases.revenue, 0) as ' ~ kpi_double() ~ ') / nullif(daily_active.active_users, 0)', 4) }} as arpu,
        {{ round_double('cast(daily_purchases.revenue as ' ~ kpi_double() ~ ') / nullif(daily_purchases.paying_users, 0)', 4) }} as arppu
    from days
    left join daily_active on days.date_day = daily_active.date_day
    left join daily_purchases on days.date_day = daily_purchases.date_day
    left join daily_new on days.date_day = daily_new.date_day

)

select * from final
