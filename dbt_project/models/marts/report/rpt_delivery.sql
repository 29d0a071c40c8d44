{#- Provider events per UTC day and outcome over the 30 days up to the as-of; events that are no
    delivery outcome (e.g. processed, deferred) are left out. -#}
with classified as (
    select cast(occurred_at as date) as day,
           case when event in ('delivered') then 'delivered'
                when event in ('open') then 'opened'
                when event in ('click') then 'clicked'
                when event in ('bounce', 'dropped', 'undelivered', 'failed') then 'bounced / failed'
                when event in ('unsubscribe', 'group_unsubscribe', 'spamreport') then 'unsubscribed / spam'
           end as outcome
    from {{ source('journey_ops', 'delivery_events') }}
    where occurred_at <= {{ as_of_ts() }} and occurred_at > {{ dbt.dateadd('day', -30, as_of_ts()) }}
)
select day, outcome, count(*) as events
from classified
where outcome is not null
group by day, outcome
