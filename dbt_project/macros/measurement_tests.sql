{#- Generic tests of the measurement models (models/marts/measurement/_measurement__models.yml). -#}

{#- No row where `column_name` is above the column `other` (a funnel stage above the sends). -#}
{% test not_above(model, column_name, other) %}
select * from {{ model }} where {{ column_name }} > {{ other }}
{% endtest %}

{#- The treated + holdout enrolments of each journey are exactly its enrolments in
    journey_enrolments whose goal window is over by the as-of (none lost, none counted twice). -#}
{% test enrolments_reconcile(model) %}
with matured as (
    select e.journey_id, count(*) as enrolments
    from {{ source('journey_ops', 'journey_enrolments') }} e
    left join {{ source('journey_ops', 'journey_goals') }} g on g.journey_id = e.journey_id
    where {{ measurement_window_end('e.trigger_at', 'g.window_seconds') }} <= {{ as_of_ts() }}
    group by e.journey_id
), counted as (
    select journey_id, sum(enrolments) as enrolments from {{ model }} group by journey_id
)
select coalesce(m.journey_id, c.journey_id) as journey_id, m.enrolments as matured, c.enrolments as counted
from matured m
full outer join counted c on c.journey_id = m.journey_id
where m.enrolments is null or c.enrolments is null or m.enrolments <> c.enrolments
{% endtest %}
