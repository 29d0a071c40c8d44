-- Whole history: sum(kpi_daily.revenue) over all days up to the as-of date equals the paid revenue
-- in staging up to as_of, to the cent (definition: macro kpi_daily_revenue_by_day). Returns the
-- total row (date_day null) and one row per mismatching day.
-- A warning, not an error, by design: kpi_daily is incremental and keeps days older than the
-- look-back window as stored, while raw_orders keeps only each order's latest version. A change to
-- an old order (a refund arriving 10 days later, a late file) therefore moves staging but not the
-- stored day. Fix: `dbt build --full-refresh --select kpi_daily` (with the run's vars). On a full
-- refresh, and whenever no old order changed, this test passes.
{{ config(severity='warn') }}
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
