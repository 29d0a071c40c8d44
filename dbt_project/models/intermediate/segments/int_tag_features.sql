-- int_tag_user_features in long form (user_id, field, value), only for the fields some rule in
-- tag_rules uses, so one static join can evaluate any rule set (int_tag_matches).
with features as (

    select * from {{ ref('int_tag_user_features') }}

), rules as (

    select distinct field from {{ source('crm_tags', 'tag_rules') }}

), long_form as (

{% for name, kind in seg_tag_fields().items() %}
    select
        user_id,
        '{{ name }}' as field,
        {% if kind == 'number' %}cast({{ name }} as {{ kpi_double() }}){% else %}cast(null as {{ kpi_double() }}){% endif %} as value_num,
        {% if kind == 'text' %}cast({{ name }} as {{ dbt.type_string() }}){% else %}cast(null as {{ dbt.type_string() }}){% endif %} as value_text,
        {% if kind == 'boolean' %}cast({{ name }} as {{ dbt.type_boolean() }}){% else %}cast(null as {{ dbt.type_boolean() }}){% endif %} as value_bool
    from features
    where exists (select 1 from rules where rules.field = '{{ name }}')
    {% if not loop.last %}union all{% endif %}
{% endfor %}

)

select * from long_form
