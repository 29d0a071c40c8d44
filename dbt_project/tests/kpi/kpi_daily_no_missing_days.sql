-- kpi_daily has one row per calendar day between its first and last day (no gap between runs).
select min(date_day) as first_day, max(date_day) as last_day, count(*) as days
from {{ ref('kpi_daily') }}
having count(*) <> {{ dbt.datediff('min(date_day)', 'max(date_day)', 'day') }} + 1
