{#- kpi_daily revenue next to the paid revenue in staging, per business-time-zone day (full outer
    join, so a day missing on either side shows up): date_day, kpi_revenue, staging_revenue, both
    decimal(18,2). Paid revenue = kpi_daily's own purchase definition: orders placed up to as_of,
    status in var paid_order_statuses, amount > 0, on the business day of ordered_at. For the
    reconciliation test in dbt_project/tests/kpi/ (every kpi_daily day: one after the as-of with
    revenue is a mismatch too; tests/kpi/kpi_daily_no_day_after_as_of.sql catches the others). -#}
{% macro kpi_daily_revenue_by_day() -%}
    select
        coalesce(kpi_days.date_day, staging_days.date_day) as date_day,
        cast(coalesce(kpi_days.revenue, 0) as decimal(18, 2)) as kpi_revenue,
        cast(coalesce(staging_days.revenue, 0) as decimal(18, 2)) as staging_revenue
    from (
        select date_day, revenue from {{ ref('kpi_daily') }}
    ) as kpi_days
    full outer join (
        select
            {{ business_date('ordered_at') }} as date_day,
            sum(amount) as revenue
        from {{ ref('stg_shop__orders') }}
        where ordered_at <= {{ as_of_ts() }}
            and status in {{ sql_in_list(var('paid_order_statuses')) }}
            and amount > 0
        group by {{ business_date('ordered_at') }}
    ) as staging_days
        on kpi_days.date_day = staging_days.date_day
{%- endmacro %}
