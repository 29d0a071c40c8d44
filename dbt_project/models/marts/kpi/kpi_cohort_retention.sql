-- Monthly registration cohorts x months since registration (0 = the registration month), up to
-- the as-of month; months are business-time-zone calendar months.
--   cohort_size     users who registered in the cohort month
--   retained_users  of them, users with any activity in that month (a stitched event or an order
--                   in any status; the same "active" as kpi_daily.active_users)
--   retention_rate  retained_users / cohort_size
{%- set as_of_month %}cast({{ dbt.date_trunc('month', as_of_date()) }} as date){% endset %}
with cohorts as (

    select
        user_id,
        cast({{ dbt.date_trunc('month', business_date('registered_at')) }} as date) as cohort_month
    from {{ ref('customer_profile') }}
    where registered_at is not null

), activity_months as (

    select distinct
        user_id,
        cast({{ dbt.date_trunc('month', 'activity_date') }} as date) as activity_month
    from {{ ref('int_customer__activity_days') }}

), cohort_sizes as (

    select cohort_month, count(*) as cohort_size
    from cohorts
    group by cohort_month

), cohort_months as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_size,
        numbers.n as months_since_registration,
        cast({{ dbt.dateadd('month', 'numbers.n', 'cohort_sizes.cohort_month') }} as date) as activity_month
    from cohort_sizes
    cross join ({{ kpi_numbers(4) }}) as numbers
    where numbers.n <= {{ dbt.datediff('cohort_sizes.cohort_month', as_of_month, 'month') }}

), retained as (

    select
        cohorts.cohort_month,
        activity_months.activity_month,
        count(*) as retained_users
    from cohorts
    inner join activity_months
        on cohorts.user_id = activity_months.user_id
        and activity_months.activity_month >= cohorts.cohort_month
    group by cohorts.cohort_month, activity_months.activity_month

), final as (

    select
        cohort_months.cohort_month,
        cohort_months.months_since_registration,
        cohort_months.activity_month,
        cohort_months.cohort_size,
        coalesce(retained.retained_users, 0) as retained_users,
        {{ round_double('cast(coalesce(retained.retained_users, 0) as ' ~ kpi_double() ~ ') / cohort_months.cohort_size', 4) }}
            as retention_rate,
        {{ as_of_ts() }} as as_of
    from cohort_months
    left join retained
        on cohort_months.cohort_month = retained.cohort_month
        and cohort_months.activity_month = retained.activity_month

)

select * from final
