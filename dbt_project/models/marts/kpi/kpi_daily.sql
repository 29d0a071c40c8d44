-- One row per business-time-zone calendar day, from the first day with data up to the as-of date.
--   active_users  distinct users with any activity that day (a stitched event or an order in any status)
--   new_users     registrations that day
--   paying_users  distinct users with a purchase that day (purchase = int_customer__orders.is_purchase)
--   orders        purchases that day; revenue = their amount (reporting currency, converted in staging)
--   arpu          revenue / active_users; arppu = revenue / paying_users (null when the divisor is 0)
-- A table rebuilt whole on every run (docs/architecture.md "Lineage and state"), so it is its own
-- full refresh and holds no day after the as-of date, whatever ran before: a refund of an old
-- order, a back-dated event or an earlier as-of than the previous run all show up. It used to be
-- incremental with a 3-day look-back, which kept stale days (late refunds) and days after an
-- earlier as-of. The rebuild is cheap: int_customer__activity_days has one row per (user, day),
-- so active_users and paying_users are row counts per day (no count(distinct) over all history),
-- and purchases and registrations are single grouped scans.
{{ config(materialized='table') }}
with activity as (

    -- one row per (user_id, activity_date)
    select activity_date, is_purchase_day from {{ ref('int_customer__activity_days') }}

), purchases as (

    select order_date, amount
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

    select first_day.first_date as start_date, {{ as_of_date() }} as end_date
    from first_day

), days as (

    {{ kpi_day_spine('bounds') }}

), daily_active as (

    select
        activity_date as date_day,
        count(*) as active_users,
        count(case when is_purchase_day then 1 end) as paying_users
    from activity
    group by activity_date

), daily_purchases as (

    select
        order_date as date_day,
        count(*) as orders,
        sum(amount) as revenue
    from purchases
    group by order_date

), daily_new as (

    select registration_date as date_day, count(*) as new_users
    from registrations
    group by registration_date

), final as (

    select
        days.date_day,
        coalesce(daily_active.active_users, 0) as active_users,
        coalesce(daily_new.new_users, 0) as new_users,
        coalesce(daily_active.paying_users, 0) as paying_users,
        coalesce(daily_purchases.orders, 0) as orders,
        cast(coalesce(daily_purchases.revenue, 0) as decimal(18, 2)) as revenue,
        {{ round_double('cast(coalesce(daily_purchases.revenue, 0) as ' ~ kpi_double() ~ ') / nullif(daily_active.active_users, 0)', 4) }} as arpu,
        {{ round_double('cast(daily_purchases.revenue as ' ~ kpi_double() ~ ') / nullif(daily_active.paying_users, 0)', 4) }} as arppu
    from days
    left join daily_active on days.date_day = daily_active.date_day
    left join daily_purchases on days.date_day = daily_purchases.date_day
    left join daily_new on days.date_day = daily_new.date_day

)

select * from final
