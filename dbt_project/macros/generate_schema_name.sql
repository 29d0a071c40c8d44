{#- Everything lives in the target schema: raw tables, ops tables and models share one namespace,
    and the stg_/int_/mart names already say which layer a relation belongs to. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ target.schema }}
{%- endmacro %}
