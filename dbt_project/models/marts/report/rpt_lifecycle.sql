{#- Lifecycle stage sizes at weekly points, the 26 weeks up to the as-of date (UTC): +1 when a stage
    row starts, -1 when it ends; a stage's size at a week is the sum of its day deltas up to that
    week (26 weeks x a few stages over the day deltas, no per-user expansion over dates). Weeks
    before the first stage row are left out. -#}
with history as (
    select lifecycle_stage, valid_from, valid_to from {{ ref('customer_lifecycle_history') }}
), changes as (
    select lifecycle_stage, cast(valid_from as date) as day, 1 as delta from history
    union all
    select lifecycle_stage, cast(valid_to as date) as day, -1 as delta from history where valid_to is not null
), daily as (
    select lifecycle_stage, day, sum(delta) as delta from changes group by lifecycle_stage, day
), weeks as (
    select cast({{ dbt.dateadd('day', '-7 * (numbers.generated_number - 1)', 'cast(' ~ as_of_ts() ~ ' as date)') }}
                as date) as week
    from ({{ dbt.generate_series(26) }}) numbers
), stages as (
    select distinct lifecycle_stage from history
)
select w.week, s.lifecycle_stage, cast(coalesce(sum(d.delta), 0) as bigint) as users
from weeks w
cross join stages s
left join daily d on d.lifecycle_stage = s.lifecycle_stage and d.day <= w.week
where w.week >= (select min(cast(valid_from as date)) from history)
group by w.week, s.lifecycle_stage
