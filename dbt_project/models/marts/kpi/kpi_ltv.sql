-- Customer lifetime value, LTV = average lifetime (months) x monthly ARPU, per group of users:
-- dimension 'registration_cohort' (business month of registration, else of first purchase/activity),
-- 'value_segment' (customer_segments family value) and 'all'. Months are business calendar months.
--   active_customer_months = (user, month) pairs with a purchase
--   monthly_arpu           = revenue / active_customer_months (revenue per paying customer-month)
--   churn_observations     = active customer-months m-1 whose next month m is complete (m before
--                            the as-of month); churned = those with no purchase in m
--   monthly_churn_rate     = churned / churn_observations
--   avg_lifetime_months    = 1 / monthly_churn_rate (expected active months of a customer who keeps
--                            buying next month with probability 1 - churn), capped at
--                            var('kpi_ltv_max_lifetime_months', 36) and used as the cap when no
--                            customer churned; null without observations
--   ltv_per_customer       = avg_lifetime_months x monthly_arpu (a paying customer)
--   ltv_per_user           = ltv_per_customer x paying_users / users (any user of the group)
{%- set max_lifetime = var('kpi_ltv_max_lifetime_months', 36) %}
{%- set dimensions = {
    'registration_cohort': 'cast(users.cohort_month as ' ~ dbt.type_string() ~ ')',
    'value_segment': 'users.value_segment',
    'all': "'all'",
} %}
with profile as (

    select
        user_id,
        revenue,
        order_count,
        cast({{ dbt.date_trunc('month',
            business_date('coalesce(registered_at, first_order_at, last_activity_at)')) }} as date) as cohort_month
    from {{ ref('customer_profile') }}

), value_segments as (

    select user_id, segment as value_segment
    from {{ ref('customer_segments') }}
    where segment_family = 'value'

), purchase_months as (

    select distinct
        user_id,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as month_start
    from {{ ref('int_customer__orders') }}
    where is_purchase

), churn_observations as (

    select
        previous.user_id,
        count(*) as observations,
        sum(case when next_month.user_id is null then 1 else 0 end) as churned
    from purchase_months as previous
    left join purchase_months as next_month
        on next_month.user_id = previous.user_id
        and next_month.month_start = cast({{ dbt.dateadd('month', 1, 'previous.month_start') }} as date)
    where {{ dbt.dateadd('month', 1, 'previous.month_start') }}
        < cast({{ dbt.date_trunc('month', as_of_date()) }} as date)
    group by previous.user_id

), active_months as (

    select user_id, count(*) as active_months
    from purchase_months
    group by user_id

), users as (

    select
        profile.user_id,
        profile.cohort_month,
        value_segments.value_segment,
        profile.revenue,
        case when profile.order_count > 0 then 1 else 0 end as is_paying,
        coalesce(active_months.active_months, 0) as active_months,
        coalesce(churn_observations.observations, 0) as observations,
        coalesce(churn_observations.churned, 0) as churned
    from profile
    left join value_segments on profile.user_id = value_segments.user_id
    left join active_months on profile.user_id = active_months.user_id
    left join churn_observations on profile.user_id = churn_observations.user_id

), grouped as (

{% for dimension, expression in dimensions.items() %}
    select
        '{{ dimension }}' as dimension,
        {{ expression }} as dimension_value,
        count(*) as users,
        sum(is_paying) as paying_users,
        cast(sum(revenue) as decimal(18, 2)) as revenue,
        sum(active_months) as active_customer_months,
        sum(observations) as churn_observations,
        sum(churned) as churned
    from users
    {% if dimension == 'all' -%}
    -- one group: PostgreSQL rejects group by a constant; having keeps "no users, no row"
    having count(*) > 0
    {%- else -%}
    group by {{ expression }}
    {%- endif %}
    {% if not loop.last %}union all{% endif %}
{% endfor %}

), rates as (

    select
        *,
        cast(revenue as {{ kpi_double() }}) / nullif(active_customer_months, 0) as monthly_arpu,
        cast(churned as {{ kpi_double() }}) / nullif(churn_observations, 0) as monthly_churn_rate
    from grouped

), lifetimes as (

    select
        *,
        case
            when churn_observations = 0 then null
            when churned = 0 then {{ max_lifetime }}
            when cast(churn_observations as {{ kpi_double() }}) / churned > {{ max_lifetime }} then {{ max_lifetime }}
            else cast(churn_observations as {{ kpi_double() }}) / churned
        end as avg_lifetime_months
    from rates

), final as (

    select
        dimension,
        dimension_value,
        users,
        paying_users,
        revenue,
        active_customer_months,
        {{ round_double('monthly_arpu', 4) }} as monthly_arpu,
        churn_observations,
        churned,
        {{ round_double('monthly_churn_rate', 4) }} as monthly_churn_rate,
        {{ round_double('avg_lifetime_months', 4) }} as avg_lifetime_months,
        {{ round_double('avg_lifetime_months * monthly_arpu', 2) }} as ltv_per_customer,
        {{ round_double('avg_lifetime_months * monthly_arpu * paying_users / users', 2) }} as ltv_per_user,
        {{ as_of_ts() }} as as_of
    from lifetimes

)

select * from final
