-- kpi_daily.revenue equals the paid revenue in staging, to the cent, for every business-time-zone
-- day that this run recomputed: the last var('kpi_daily_lookback_days') days before the as-of
-- date and the as-of date itself (an incremental run always rebuilds these from the full sources).
-- Paid revenue = kpi_daily's own definition (macro kpi_daily_revenue_by_day). Returns one row per
-- mismatching day.
-- Older days are frozen by the incremental model, so a refund arriving after its day left the
-- look-back window is not reflected there until a full refresh: the whole-history check is the
-- warning test assert_kpi_daily_revenue_reconciles_all_days.
{%- set lookback = var('kpi_daily_lookback_days', 3) %}
with compared as (

    {{ kpi_daily_revenue_by_day() }}

)

select *
from compared
where date_day >= cast({{ dbt.dateadd('day', -lookback, as_of_date()) }} as date)
    and kpi_revenue <> staging_revenue
