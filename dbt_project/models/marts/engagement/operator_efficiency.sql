-- Operator efficiency, one row per operator with tasks: workload, completion, handling time, and
-- purchase conversion within N days (var operator_conversion_window_days, default 7) of a contact
-- compared with comparable customers who were not contacted: tasks of the same rule that expired,
-- stayed unassigned or got no answer (measured from task creation). The baseline is the
-- operator's own rule mix, so an operator working harder rules is not penalised. Only contacts
-- whose window has fully elapsed by as_of count towards conversion.
--
-- operator_tasks / task_outcomes are written by the task assets (sources crm_tasks and
-- crm_task_outcomes, models/_python_outputs__sources.yml): Dagster runs this mart after them in the
-- same run, so it describes this run's tasks. Both tables exist from migration 31 on, empty before
-- the task assets ever ran (then the mart is empty).
{%- set window_days = var('operator_conversion_window_days', 7) %}
with tasks as (

    select task_id, user_id, operator_id, rule, status, created_at, assigned_at
    from {{ source('crm_tasks', 'operator_tasks') }}
    where created_at <= {{ as_of_ts() }}

), outcomes as (

    select task_id, outcome, handled_at, handling_seconds
    from {{ source('crm_task_outcomes', 'task_outcomes') }}
    where handled_at <= {{ as_of_ts() }}

), task_outcome_summary as (

    select
        task_id,
        min(case when outcome in ('done', 'converted') then handled_at end) as first_contact_at,
        max(case when outcome = 'converted' then 1 else 0 end) as reported_converted,
        sum(handling_seconds) as handling_seconds,
        count(*) as outcome_rows
    from outcomes
    group by task_id

), purchases as (

    select user_id, ordered_at
    from {{ ref('stg_shop__orders') }}
    where lower(status) in {{ sql_in_list(var('paid_order_statuses')) }} and amount > 0

), task_facts as (

    select
        tasks.*,
        summary.first_contact_at,
        coalesce(summary.reported_converted, 0) as reported_converted,
        summary.handling_seconds,
        coalesce(summary.outcome_rows, 0) > 0 as handled,
        -- start of the conversion window: the contact, or for the uncontacted the task's creation
        coalesce(summary.first_contact_at, tasks.created_at) as window_start
    from tasks
    left join task_outcome_summary as summary on tasks.task_id = summary.task_id

), converted_windows as (

    -- (user, window start) pairs with a purchase in (window_start, window_start + N days]: one join,
    -- not an `exists` correlated with each task (PostgreSQL ran that once per task, a scan of the
    -- orders each time: 262 s at 100k users; docs/benchmarks.md "PostgreSQL fixes"). Both columns
    -- are never null, so the left join below says exactly what the `exists` said.
    select distinct task_facts.user_id, task_facts.window_start
    from task_facts
    inner join purchases
        on purchases.user_id = task_facts.user_id
       and purchases.ordered_at > task_facts.window_start
       and purchases.ordered_at <= {{ dbt.dateadd('day', window_days, 'task_facts.window_start') }}

), windowed as (

    select
        task_facts.*,
        task_facts.window_start <= {{ dbt.dateadd('day', -window_days, as_of_ts()) }} as window_complete,
        converted_windows.user_id is not null as converted_in_window
    from task_facts
    left join converted_windows
        on task_facts.user_id = converted_windows.user_id
       and task_facts.window_start = converted_windows.window_start

), rule_baseline as (

    select
        rule,
        avg(case when converted_in_window then 1.0 else 0.0 end) as baseline_rate
    from windowed
    where first_contact_at is null
      and status in ('expired', 'unassigned', 'no_answer')
      and window_complete
    group by rule

), per_operator as (

    select
        windowed.operator_id,
        count(*) as tasks_assigned,
        count(case when handled then 1 end) as tasks_handled,
        count(first_contact_at) as tasks_contacted,
        sum(reported_converted) as tasks_converted_reported,
        count(case when status = 'expired' then 1 end) as tasks_expired,
        avg(handling_seconds) as avg_handling_seconds,
        coalesce(sum(handling_seconds), 0) as total_handling_seconds,
        count(case when first_contact_at is not null and window_complete then 1 end) as mature_contacts,
        count(case when first_contact_at is not null and window_complete and converted_in_window then 1 end)
            as converted_within_window,
        avg(case when first_contact_at is not null and window_complete then rule_baseline.baseline_rate end)
            as baseline_conversion_rate
    from windowed
    left join rule_baseline on windowed.rule = rule_baseline.rule
    where windowed.operator_id is not null
    group by windowed.operator_id

)

select
    operator_id,
    tasks_assigned,
    tasks_handled,
    tasks_contacted,
    tasks_converted_reported,
    tasks_expired,
    cast(tasks_handled as {{ type_double() }}) / tasks_assigned as completion_rate,
    avg_handling_seconds,
    total_handling_seconds,
    mature_contacts,
    converted_within_window,
    case when mature_contacts > 0
         then cast(converted_within_window as {{ type_double() }}) / mature_contacts end as conversion_rate,
    baseline_conversion_rate,
    case when mature_contacts > 0 and baseline_conversion_rate is not null
         then cast(converted_within_window as {{ type_double() }}) / mature_contacts - baseline_conversion_rate
    end as conversion_uplift,
    {{ as_of_ts() }} as as_of
from per_operator
