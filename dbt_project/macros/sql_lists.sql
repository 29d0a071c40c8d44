{#- A list var rendered as a SQL IN-list of string literals: status in {{ sql_in_list(var('x')) }}.
    Single quotes are doubled so a value can never break out of its literal. -#}
{% macro sql_in_list(values) -%}
    ({%- for value in values -%}
        '{{ value | string | replace("'", "''") }}'{% if not loop.last %}, {% endif %}
    {%- endfor -%})
{%- endmacro %}
