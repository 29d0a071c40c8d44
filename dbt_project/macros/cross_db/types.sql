{#- Types whose spelling differs between adapters. -#}

{#- A timestamp with time zone (an instant). dbt.type_timestamp() is the zone-less type, and
    appending "tz" to it only happens to work on DuckDB. -#}
{% macro type_timestamptz() -%}
    {{ return(adapter.dispatch('type_timestamptz', 'crmflow')()) }}
{%- endmacro %}

{% macro default__type_timestamptz() -%}
    timestamp with time zone
{%- endmacro %}

{% macro duckdb__type_timestamptz() -%}
    timestamptz
{%- endmacro %}

{#- A 64-bit float for rates and averages: dbt.type_float() is a 32-bit float on DuckDB and
    PostgreSQL has no type named double. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'crmflow')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro bigquery__type_double() -%}
    float64
{%- endmacro %}
