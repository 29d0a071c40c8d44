{#- Holdout uplift inputs: per journey and group (treated / holdout), the enrolments whose goal
    window is over (trigger_at + window <= as-of), how many reached the journey's goal inside
    (trigger_at, trigger_at + window], and their paid revenue in that window. Intention-to-treat:
    every matured enrolment counts, sent or not, exited or not; the goal is re-evaluated from the
    orders and events rather than read from converted_at (the engine stops checking goals once a
    treated enrolment exits, holdouts never exit). The statistics are Python
    (crmflow/measurement/uplift.py, scipy). An order goal matches the journey's goal statuses, or the
    paid statuses when the journey is no longer configured. -#}
with goals as (
    select journey_id, goal_kind, goal_event, window_seconds from {{ source('journey_ops', 'journey_goals') }}
), goal_statuses as (
    select journey_id, status from {{ source('journey_ops', 'journey_goal_statuses') }}
), orders as (
    select user_id, ordered_at, status, amount from {{ ref('stg_shop__orders') }}
), enrolments as (
    select e.enrolment_id, e.journey_id, e.user_id, e.is_holdout, e.trigger_at,
           {{ measurement_window_end('e.trigger_at', 'g.window_seconds') }}
               as window_end,
           coalesce(g.goal_kind, 'order') as goal_kind, g.goal_event,
           case when g.journey_id is not null then 1 else 0 end as configured
    from {{ source('journey_ops', 'journey_enrolments') }} e
    left join goals g on g.journey_id = e.journey_id
), matured as (
    select * from enrolments where window_end <= {{ as_of_ts() }}
), order_goals as (
    select distinct m.enrolment_id
    from matured m
    join orders o
      on o.user_id = m.user_id and o.ordered_at > m.trigger_at and o.ordered_at <= m.window_end
    left join goal_statuses gs on gs.journey_id = m.journey_id and gs.status = o.status
    where m.goal_kind = 'order'
      and (gs.status is not null
           or (m.configured = 0 and o.status in {{ sql_in_list(var('paid_order_statuses')) }}))
), event_goals as (
    select distinct m.enrolment_id
    from matured m
    join {{ ref('events_stitched') }} ev
      on ev.user_id = m.user_id and ev.event_at > m.trigger_at and ev.event_at <= m.window_end
     and ev.event_name = m.goal_event
    where m.goal_kind = 'event'
), window_revenue as (
    select m.enrolment_id, sum(o.amount) as revenue
    from matured m
    join orders o
      on o.user_id = m.user_id and o.ordered_at > m.trigger_at and o.ordered_at <= m.window_end
    where o.status in {{ sql_in_list(var('paid_order_statuses')) }}
    group by m.enrolment_id
)
select m.journey_id, m.is_holdout,
       cast(count(*) as bigint) as enrolments,
       cast(count(og.enrolment_id) + count(eg.enrolment_id) as bigint) as converted,
       cast(coalesce(sum(r.revenue), 0) as {{ type_double() }}) as revenue,
       {{ as_of_ts() }} as as_of
from matured m
left join order_goals og on og.enrolment_id = m.enrolment_id
left join event_goals eg on eg.enrolment_id = m.enrolment_id
left join window_revenue r on r.enrolment_id = m.enrolment_id
group by m.journey_id, m.is_holdout
