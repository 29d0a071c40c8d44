{#- ARPU over a trailing 7 days: revenue / active users summed over the window (not a mean of
    ratios), for the 180 days up to the as-of date (UTC). -#}
with window_sums as (
    select date_day, revenue, active_users,
           sum(revenue) over w as revenue_7d, sum(active_users) over w as active_7d
    from {{ ref('kpi_daily') }}
    where date_day <= cast({{ as_of_ts() }} as date)
    window w as (order by date_day rows between 6 preceding and current row)
)
select date_day, cast(revenue as {{ type_double() }}) as revenue,
       cast(revenue_7d as {{ type_double() }}) / nullif(active_7d, 0) as arpu_7d
from window_sums
where date_day > cast({{ dbt.dateadd('day', -180, 'cast(' ~ as_of_ts() ~ ' as date)') }} as date)
