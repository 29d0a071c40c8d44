{#- Tasks and conversion per operator against the baseline of the same task rules. -#}
select operator_id, tasks_assigned, tasks_handled, tasks_converted_reported, tasks_expired,
       cast(completion_rate as {{ type_double() }}) as completion_rate,
       cast(conversion_rate as {{ type_double() }}) as conversion_rate,
       cast(baseline_conversion_rate as {{ type_double() }}) as baseline_conversion_rate
from {{ ref('operator_efficiency') }}
