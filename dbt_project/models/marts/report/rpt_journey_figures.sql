{#- The header cards on journeys: one row. bounce_rate is null without a sent message; the report
    shows it only when delivery_event_count (events up to the as-of) is above 0, since a bounce rate of 0
    without any delivery event would be a guess, not a measurement. -#}
select
    (select cast(sum(sent) as bigint) from {{ ref('journey_attribution') }}) as messages_sent,
    (select cast(sum(revenue) as {{ type_double() }}) from {{ ref('journey_attribution') }}) as attributed_revenue,
    (select cast(sum(bounced) as {{ type_double() }}) / nullif(sum(sent), 0)
     from {{ ref('journey_attribution') }}) as bounce_rate,
    (select count(*) from {{ source('journey_ops', 'delivery_events') }}
     where occurred_at <= {{ as_of_ts() }}) as delivery_event_count
