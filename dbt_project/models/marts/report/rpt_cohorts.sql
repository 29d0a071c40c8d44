{#- Retention of the last 12 registration months (the latest cohort and the 11 before it), up to
    12 months after registration. -#}
with cohorts as (
    select cohort_month, months_since_registration, cohort_size, retention_rate
    from {{ ref('kpi_cohort_retention') }}
)
select cohort_month, months_since_registration, cohort_size, retention_rate
from cohorts
where cohort_month >= (select cast({{ dbt.dateadd('month', -11, 'max(cohort_month)') }} as date) from cohorts)
  and months_since_registration <= 12
