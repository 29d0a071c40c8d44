{#- Body of an incremental "one row per state spell" history (type-2 slowly changing dimension)
    over the current-state model `current_model`, keyed by `key_columns` (default user_id; e.g.
    user_id + segment_family for segments) and tracking `tracked_columns`.

    valid_from / valid_to are run as-of times: a row opens at the as-of of the run that first saw
    the state and closes (valid_to = that run's as-of) when a later run sees a different state for
    the key or no longer sees the key. valid_to null = current row.

    - full refresh: every current row opens at this as-of (so a full refresh gives the current state);
    - incremental: emits the rows to close (same key and valid_from as the stored row, so
      delete+insert on key + valid_from replaces them) and the rows to open;
    - a run whose as-of is not later than the latest as-of already stored emits nothing, so
      re-running the same as-of (or an older one) never rewrites history. -#}
{% macro history_scd(current_model, tracked_columns, key_columns=['user_id']) -%}
{%- set as_of = as_of_ts() -%}
{%- set all_columns = key_columns + tracked_columns -%}
with current_state as (

    select {{ all_columns | join(', ') }}
    from {{ current_model }}

)
{% if is_incremental() %}
, open_rows as (

    select {{ all_columns | join(', ') }}, valid_from
    from {{ this }}
    where valid_to is null

), last_run as (

    select max(coalesce(valid_to, valid_from)) as last_as_of
    from {{ this }}

), rows_to_open as (

    select
        {% for column in all_columns %}current_state.{{ column }},
        {% endfor %}{{ as_of }} as valid_from,
        cast(null as {{ type_timestamptz() }}) as valid_to
    from current_state
    left join open_rows
        on {% for column in key_columns %}current_state.{{ column }} = open_rows.{{ column }}{% if not loop.last %}
        and {% endif %}{% endfor %}
    where open_rows.{{ key_columns[0] }} is null
        {% for column in tracked_columns %}or current_state.{{ column }} is distinct from open_rows.{{ column }}
        {% endfor %}

), rows_to_close as (

    select
        {% for column in all_columns %}open_rows.{{ column }},
        {% endfor %}open_rows.valid_from,
        {{ as_of }} as valid_to
    from open_rows
    left join current_state
        on {% for column in key_columns %}open_rows.{{ column }} = current_state.{{ column }}{% if not loop.last %}
        and {% endif %}{% endfor %}
    where current_state.{{ key_columns[0] }} is null
        {% for column in tracked_columns %}or current_state.{{ column }} is distinct from open_rows.{{ column }}
        {% endfor %}

), changes as (

    select * from rows_to_open
    union all
    select * from rows_to_close

)

select changes.*
from changes
cross join last_run
where last_run.last_as_of is null or {{ as_of }} > last_run.last_as_of
{% else %}
select
    {{ all_columns | join(', ') }},
    {{ as_of }} as valid_from,
    cast(null as {{ type_timestamptz() }}) as valid_to
from current_state
{% endif %}
{%- endmacro %}
