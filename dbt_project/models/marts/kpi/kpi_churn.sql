-- Monthly customer churn (business-time-zone calendar months), one row per month m from the month
-- after the first purchase month up to the as-of month:
--   customers_prev_month = customers with a purchase in month m-1
--   churned_customers    = those of them with no purchase in month m
--   churn_rate           = churned_customers / customers_prev_month (null when no customers)
-- is_complete_month is false for the as-of month, whose churn can still fall as orders arrive.
with purchase_months as (

    select distinct
        user_id,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as month_start
    from {{ ref('int_customer__orders') }}
    where is_purchase

), bounds as (

    select
        cast({{ dbt.dateadd('month', 1, 'min(month_start)') }} as date) as start_month,
        cast({{ dbt.date_trunc('month', as_of_date()) }} as date) as end_month
    from purchase_months

), months as (

    {{ kpi_month_spine('bounds') }}

), previous_customers as (

    select
        months.month_start,
        previous.user_id,
        case when current_month.user_id is null then 1 else 0 end as churned
    from months
    inner join purchase_months as previous
        on previous.month_start = cast({{ dbt.dateadd('month', -1, 'months.month_start') }} as date)
    left join purchase_months as current_month
        on current_month.user_id = previous.user_id
        and current_month.month_start = months.month_start

), per_month as (

    select
        months.month_start,
        count(previous_customers.user_id) as customers_prev_month,
        coalesce(sum(previous_customers.churned), 0) as churned_customers
    from months
    left join previous_customers on months.month_start = previous_customers.month_start
    group by months.month_start

), final as (

    select
        month_start,
        customers_prev_month,
        customers_prev_month - churned_customers as retained_customers,
        churned_customers,
        {{ round_double('cast(churned_customers as ' ~ kpi_double() ~ ') / nullif(customers_prev_month, 0)', 4) }} as churn_rate,
        {{ dbt.dateadd('month', 1, 'month_start') }} <= {{ as_of_date() }} as is_complete_month,
        {{ as_of_ts() }} as as_of
    from per_month

)

select * from final
