{#- Per journey: messages sent, delivered, opened, clicked, converted and attributed revenue. -#}
select journey_id, cast(sum(sent) as bigint) as sent, cast(sum(delivered) as bigint) as delivered,
       cast(sum(opened) as bigint) as opened, cast(sum(clicked) as bigint) as clicked,
       cast(sum(converted) as bigint) as converted, cast(sum(revenue) as {{ type_double() }}) as revenue
from {{ ref('journey_attribution') }}
group by journey_id
