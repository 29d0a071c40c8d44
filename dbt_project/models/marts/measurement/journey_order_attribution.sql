{#- Last touch: a paid order is credited to the latest message sent to the same user before the
    order whose goal window still covers it (sent_at < ordered_at <= window_end). One order gives
    credit to at most one message; a message may collect several orders. -#}
with sent as (
    select * from {{ ref('int_measurement__sent_messages') }}
), paid_orders as (
    select order_id, user_id, ordered_at, amount
    from {{ ref('stg_shop__orders') }}
    where status in {{ sql_in_list(var('paid_order_statuses')) }} and ordered_at <= {{ as_of_ts() }}
), candidates as (
    select o.order_id, o.user_id, o.ordered_at, o.amount, s.message_key, s.journey_id, s.step_id,
           s.variant, s.channel, s.sent_at,
           -- latest send first; the key (in code-point order on every engine) breaks exact ties
           row_number() over (partition by o.order_id
                              order by s.sent_at desc, {{ binary_collation('s.message_key') }} desc) as touch_rank
    from paid_orders o
    join sent s
      on s.user_id = o.user_id and s.sent_at < o.ordered_at and o.ordered_at <= s.window_end
)
select order_id, user_id, ordered_at, cast(amount as decimal(18, 2)) as amount, message_key, journey_id,
       step_id, variant, channel, sent_at, {{ as_of_ts() }} as as_of
from candidates
where touch_rank = 1
