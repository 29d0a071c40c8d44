{#- Per journey, step and variant. The engagement funnel is monotone: an open proves delivery, a
    click proves an open (image blocking hides many opens), so each stage counts messages with
    that event or a later one. -#}
with sent as (
    select * from {{ ref('int_measurement__sent_messages') }}
), engagement as (
    select message_key,
           max(case when event in ('delivered', 'open', 'click') then 1 else 0 end) as delivered,
           max(case when event in ('open', 'click') then 1 else 0 end) as opened,
           max(case when event = 'click' then 1 else 0 end) as clicked,
           max(case when event in ('bounce', 'dropped', 'undelivered', 'failed') then 1 else 0 end) as bounced,
           max(case when event in ('unsubscribe', 'group_unsubscribe', 'spamreport') then 1 else 0 end)
               as unsubscribed
    from {{ source('journey_ops', 'delivery_events') }}
    where message_key is not null and occurred_at <= {{ as_of_ts() }}
    group by message_key
), credit as (
    select message_key, count(*) as orders, sum(amount) as revenue
    from {{ ref('journey_order_attribution') }}
    group by message_key
)
select s.journey_id, s.step_id, s.variant,
       cast(count(*) as bigint) as sent,
       cast(coalesce(sum(e.delivered), 0) as bigint) as delivered,
       cast(coalesce(sum(e.opened), 0) as bigint) as opened,
       cast(coalesce(sum(e.clicked), 0) as bigint) as clicked,
       cast(coalesce(sum(e.bounced), 0) as bigint) as bounced,
       cast(coalesce(sum(e.unsubscribed), 0) as bigint) as unsubscribed,
       cast(count(c.message_key) as bigint) as converted,
       cast(coalesce(sum(c.orders), 0) as bigint) as attributed_orders,
       cast(coalesce(sum(c.revenue), 0) as decimal(18, 2)) as revenue,
       {{ round_double('cast(count(c.message_key) as ' ~ type_double() ~ ') / count(*)', 6) }} as conversion_rate,
       {{ as_of_ts() }} as as_of
from sent s
left join engagement e on e.message_key = s.message_key
left join credit c on c.message_key = s.message_key
group by s.journey_id, s.step_id, s.variant
