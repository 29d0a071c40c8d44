{#- JSON access behind adapter.dispatch: staging is the only layer that reads JSON, and another
    adapter only needs its own implementation of these two macros. -#}

{#- Text value at a JSON path given as a list of keys, e.g. json_text('context', ['device', 'type']).
    Missing keys give null, never an error. -#}
{% macro json_text(column, keys) -%}
    {{ return(adapter.dispatch('json_text', 'crmflow')(column, keys)) }}
{%- endmacro %}

{% macro default__json_text(column, keys) -%}
    json_extract_path_text({{ column }}{% for key in keys %}, '{{ key }}'{% endfor %})
{%- endmacro %}

{% macro duckdb__json_text(column, keys) -%}
    json_extract_string({{ column }}, '$.{{ keys | join(".") }}')
{%- endmacro %}

{#- FROM-clause fragment that turns the JSON array in `column` of `relation_alias` into one row per
    element, exposing `<element_alias>` (json) and `<index_alias>` (1-based position). Rows whose
    array is null or empty produce no elements (inner join semantics). -#}
{% macro json_array_elements(column, element_alias, index_alias) -%}
    {{ return(adapter.dispatch('json_array_elements', 'crmflow')(column, element_alias, index_alias)) }}
{%- endmacro %}

{% macro default__json_array_elements(column, element_alias, index_alias) -%}
    cross join lateral json_array_elements({{ column }}) with ordinality as json_elements({{ element_alias }}, {{ index_alias }})
{%- endmacro %}

{% macro duckdb__json_array_elements(column, element_alias, index_alias) -%}
    cross join unnest(cast({{ column }} as json[])) with ordinality as json_elements({{ element_alias }}, {{ index_alias }})
{%- endmacro %}
