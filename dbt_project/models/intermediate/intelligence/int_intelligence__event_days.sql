-- The intelligence features' event stage at the run's as_of (crmflow/intelligence/features.py):
-- events before as_of per identified user, UTC calendar day and q = the number of whole days before
-- as_of the event lies in (ceil((as_of - event_at) / 1 day)), with their count and latest time.
-- Churn (three cutoffs, each a whole number of days before as_of) and clusters read this one table
-- instead of passing over events_stitched themselves; a window "event_at >= cutoff - N days" is
-- q <= k + N exactly, not rounded to days. `later` marks the second q part of a day (a UTC day
-- spans two q values when as_of is not midnight), so distinct active days are rows minus `later`
-- rows. as_of is a column so Python can tell the stage was built at its as-of (else it stages its
-- own copy).
{{ config(materialized='table') }}

with per_day_q as (
    select
        user_id,
        {{ floor_div(epoch_microseconds(as_of_ts()) ~ ' - ' ~ epoch_microseconds('event_at') ~ ' + 86399999999',
                     '86400000000') }} as q,
        {{ utc_date('event_at') }} as day,
        count(*) as n,
        max(event_at) as last_at
    from {{ ref('events_stitched') }}
    where event_at < {{ as_of_ts() }} and user_id is not null
    group by 1, 2, 3
)

select
    user_id,
    q,
    day,
    n,
    last_at,
    q > min(q) over (partition by user_id, day) as later,
    {{ as_of_ts() }} as as_of
from per_day_q
