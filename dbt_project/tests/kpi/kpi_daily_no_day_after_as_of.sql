-- Time consistency (docs/architecture.md "Lineage and state"): no kpi_daily row describes a day
-- after the run's as-of date, whatever as-of ran before. Returns the offending days.
select date_day
from {{ ref('kpi_daily') }}
where date_day > {{ as_of_date() }}
