{#- The conversion trend after a send pooled over send days with right-censoring (Kaplan-Meier): day
    d uses only the send days whose day d is over (journey_conversion_trend has a cell only then). Of
    the messages not converted by day d-1 on those send days, the share converting on day d is that
    day's rate; the cumulative share is 1 - the product of (1 - rate) over days 0..d, taken as
    exp(sum(ln(1 - rate))) (no engine has a product aggregate), and 1 once a day converted everyone
    at risk. A plain sum over whatever cells exist would mix fewer, older sends into the later days,
    so the curve could fall. -#}
with cells as (
    select journey_id, send_date, days_since_send, sent, converted_cumulative,
           coalesce(lag(converted_cumulative) over (
               partition by journey_id, send_date order by days_since_send), 0) as converted_before
    from {{ ref('journey_conversion_trend') }}
), per_day as (
    select journey_id, days_since_send, count(*) as send_days, cast(sum(sent) as bigint) as sent,
           cast(sum(sent - converted_before) as bigint) as at_risk,
           cast(sum(converted_cumulative - converted_before) as bigint) as converted_on_day
    from cells
    group by journey_id, days_since_send
), rates as (
    select *, coalesce(cast(converted_on_day as {{ type_double() }}) / nullif(at_risk, 0), 0) as day_rate
    from per_day
)
select journey_id, days_since_send, send_days, sent, at_risk, converted_on_day,
       case when max(case when day_rate >= 1 then 1 else 0 end) over w = 1 then cast(1 as {{ type_double() }})
            else 1 - exp(coalesce(sum(ln(case when day_rate < 1 then 1 - day_rate end)) over w, 0))
       end as converted_share
from rates
window w as (partition by journey_id order by days_since_send rows between unbounded preceding and current row)
