{#- A 64-bit integer hash of the values `expressions` (a list of SQL expressions), for change
    detection (watermarks), never for anything that must be the same across engines. DuckDB keeps
    its native hash(); elsewhere the first 64 bits of an md5 of the values as text. -#}
{% macro row_hash(expressions) -%}
    {{ return(adapter.dispatch('row_hash', 'crmflow')(expressions)) }}
{%- endmacro %}

{% macro default__row_hash(expressions) -%}
    cast(cast('x' || substr(md5(concat_ws('|'
        {%- for expression in expressions %}, coalesce(cast({{ expression }} as {{ dbt.type_string() }}), '\N'){% endfor -%}
    )), 1, 16) as bit(64)) as bigint)
{%- endmacro %}

{% macro duckdb__row_hash(expressions) -%}
    hash({{ expressions | join(', ') }})
{%- endmacro %}
