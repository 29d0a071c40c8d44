-- kpi_daily.revenue equals the paid revenue in staging, to the cent, for every business-time-zone
-- day and in total (definition: macro kpi_daily_revenue_by_day). Returns the total row (date_day
-- null) and one row per mismatching day. An error: kpi_daily is rebuilt whole on every run, so a
-- refund of an old order or a late file is reflected the same run (it used to be incremental with
-- a 3-day look-back, and a whole-history warning stood in for this test).
with compared as (

    {{ kpi_daily_revenue_by_day() }}

), totals as (

    select
        cast(null as date) as date_day,
        cast(sum(kpi_revenue) as decimal(18, 2)) as kpi_revenue,
        cast(sum(staging_revenue) as decimal(18, 2)) as staging_revenue
    from compared

)

select * from totals where kpi_revenue <> staging_revenue
union all
select * from compared where kpi_revenue <> staging_revenue
