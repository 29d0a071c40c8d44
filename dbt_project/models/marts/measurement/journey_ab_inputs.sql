{#- A/B inputs: sent, converted (last touch) and revenue per variant, for the journey steps with at
    least two variants (steps without variants carry '-' and are left out). The interval, z-test
    and verdict are Python (crmflow/measurement/ab.py, scipy). -#}
with per_variant as (
    select journey_id, step_id, variant,
           cast(sum(sent) as bigint) as sent,
           cast(sum(converted) as bigint) as converted,
           cast(sum(revenue) as {{ type_double() }}) as revenue
    from {{ ref('journey_attribution') }}
    where variant <> '{{ measurement_no_variant() }}'
    group by journey_id, step_id, variant
), counted as (
    select *, count(*) over (partition by journey_id, step_id) as variants
    from per_variant
)
select journey_id, step_id, variant, sent, converted, revenue, {{ as_of_ts() }} as as_of
from counted
where variants >= 2
