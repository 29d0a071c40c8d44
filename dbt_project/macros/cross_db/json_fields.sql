{#- JSON access behind adapter.dispatch: staging is the only layer that reads JSON, and another
    adapter only needs its own implementation of these macros. The PostgreSQL forms work on json
    and jsonb columns alike (crmflow's PostgreSQL backend stores JSON as jsonb). -#}

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

{% macro postgres__json_text(column, keys) -%}
    ({{ column }} #>> '{ {{- keys | join(",") -}} }')
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

{#- A value that is not an array (JSON null) has no elements, as on DuckDB, instead of an error. -#}
{% macro postgres__json_array_elements(column, element_alias, index_alias) -%}
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(cast({{ column }} as jsonb)) = 'array' then cast({{ column }} as jsonb) end
    ) with ordinality as json_elements({{ element_alias }}, {{ index_alias }})
{%- endmacro %}

{#- Like json_array_elements, for arrays of objects whose text fields `keys` are all a model reads:
    each element is parsed once into those fields, read with json_element_text(element_alias, key)
    (key must be one of `keys`). On DuckDB that is one json_transform per array instead of a parse
    of the element per field (4x less CPU for the order lines); elsewhere it is json_array_elements. -#}
{% macro json_array_records(column, element_alias, index_alias, keys) -%}
    {{ return(adapter.dispatch('json_array_records', 'crmflow')(column, element_alias, index_alias, keys)) }}
{%- endmacro %}

{% macro default__json_array_records(column, element_alias, index_alias, keys) -%}
    {{ crmflow.json_array_elements(column, element_alias, index_alias) }}
{%- endmacro %}

{% macro duckdb__json_array_records(column, element_alias, index_alias, keys) -%}
    cross join unnest(json_transform({{ column }}, '[{ {%- for key in keys %}"{{ key }}":"VARCHAR"{% if not loop.last %},{% endif %}{% endfor -%} }]'))
        with ordinality as json_elements({{ element_alias }}, {{ index_alias }})
{%- endmacro %}

{% macro json_element_text(element_alias, key) -%}
    {{ return(adapter.dispatch('json_element_text', 'crmflow')(element_alias, key)) }}
{%- endmacro %}

{% macro default__json_element_text(element_alias, key) -%}
    {{ crmflow.json_text(element_alias, [key]) }}
{%- endmacro %}

{% macro duckdb__json_element_text(element_alias, key) -%}
    struct_extract({{ element_alias }}, '{{ key }}')
{%- endmacro %}

{% macro postgres__json_element_text(element_alias, key) -%}
    ({{ element_alias }} ->> '{{ key }}')
{%- endmacro %}
