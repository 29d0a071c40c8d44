{#- The first 60 bits of the md5 of a text expression, as a non-negative bigint: the same value on
    every engine (crmflow.warehouse.dialect.hex_to_bigint is the Python twin). For a few rows
    (a seed, a config); a per-row hash of a big table costs more than storing the values. -#}
{% macro md5_bigint(text_expression) -%}
    {{ return(adapter.dispatch('md5_bigint', 'crmflow')(text_expression)) }}
{%- endmacro %}

{% macro default__md5_bigint(text_expression) -%}
    cast(cast('x' || lpad(substr(md5({{ text_expression }}), 1, 15), 16, '0') as bit(64)) as bigint)
{%- endmacro %}

{% macro duckdb__md5_bigint(text_expression) -%}
    cast(cast('0x' || substr(md5({{ text_expression }}), 1, 15) as ubigint) as bigint)
{%- endmacro %}
