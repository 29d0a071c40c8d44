{#- The revenue card: paid revenue of the 30 days up to the as-of date (UTC), null without a day. -#}
select cast(sum(revenue) as {{ type_double() }}) as revenue_30d
from {{ ref('kpi_daily') }}
where date_day > cast({{ dbt.dateadd('day', -30, 'cast(' ~ as_of_ts() ~ ' as date)') }} as date)
  and date_day <= cast({{ as_of_ts() }} as date)
