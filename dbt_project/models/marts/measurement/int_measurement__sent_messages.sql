{{ config(materialized='view') }}
{#- Every message sent by the as-of, with the end of its journey's goal window (a journey without
    a configured goal, or no longer configured, gets var measurement_default_window_days). -#}
with ledger as (
    select message_key, journey_id, step_id, variant, user_id, channel, state, sent_at
    from {{ source('journey_ops', 'send_ledger') }}
), goals as (
    select journey_id, window_seconds from {{ source('journey_ops', 'journey_goals') }}
)
select l.message_key, l.journey_id, l.step_id,
       coalesce(l.variant, '{{ measurement_no_variant() }}') as variant,
       l.user_id, l.channel, l.sent_at,
       {{ measurement_window_end('l.sent_at', 'g.window_seconds') }}
           as window_end
from ledger l
left join goals g on g.journey_id = l.journey_id
where l.state = 'sent' and l.sent_at is not null and l.sent_at <= {{ as_of_ts() }}
