{#- Day d = the d-th UTC calendar day after the send's day (day 0 = the same day), d = 0..var
    measurement_trend_days. A (send day, d) cell is kept only once that calendar day is over, so a
    young send never shows a falsely low rate. Sessions run in UTC on every engine. -#}
with sent as (
    select * from {{ ref('int_measurement__sent_messages') }}
), first_credit as (
    select message_key, min(ordered_at) as first_order_at
    from {{ ref('journey_order_attribution') }}
    group by message_key
), per_message as (
    select s.journey_id, cast(s.sent_at as date) as send_date,
           cast({{ dbt.datediff('cast(s.sent_at as date)', 'cast(f.first_order_at as date)', 'day') }} as integer)
               as conversion_day
    from sent s
    left join first_credit f on f.message_key = s.message_key
), sends as (
    select journey_id, send_date, count(*) as sent from per_message group by journey_id, send_date
), conversions as (
    select journey_id, send_date, conversion_day, count(*) as converted
    from per_message
    where conversion_day is not null
    group by journey_id, send_date, conversion_day
), days as (
    select cast(generated_number - 1 as integer) as days_since_send
    from ({{ dbt.generate_series(var('measurement_trend_days') + 1) }}) numbers
), grid as (
    select s.journey_id, s.send_date, s.sent, d.days_since_send
    from sends s
    cross join days d
    where {{ dbt.dateadd('day', 'd.days_since_send + 1', 's.send_date') }} <= cast({{ as_of_ts() }} as date)
)
select g.journey_id, g.send_date, g.days_since_send, cast(g.sent as bigint) as sent,
       cast(coalesce(sum(c.converted), 0) as bigint) as converted_cumulative,
       {{ round_double('cast(coalesce(sum(c.converted), 0) as ' ~ type_double() ~ ') / g.sent', 6) }}
           as converted_share,
       {{ as_of_ts() }} as as_of
from grid g
left join conversions c
  on c.journey_id = g.journey_id and c.send_date = g.send_date and c.conversion_day <= g.days_since_send
group by g.journey_id, g.send_date, g.days_since_send, g.sent
