{#- Statements and query hints whose spelling differs between adapters. -#}

{#- Replace `relation` with the result of `sql` (for hooks that keep a side table, such as the
    incremental models' watermarks). -#}
{% macro replace_table_as(relation, sql) -%}
    {{ return(adapter.dispatch('replace_table_as', 'crmflow')(relation, sql)) }}
{%- endmacro %}

{% macro default__replace_table_as(relation, sql) -%}
    drop table if exists {{ relation }};
    create table {{ relation }} as {{ sql }}
{%- endmacro %}

{% macro duckdb__replace_table_as(relation, sql) -%}
    create or replace table {{ relation }} as {{ sql }}
{%- endmacro %}

{#- "as not materialized" for a CTE that several parts of a query read but that is cheaper to
    inline into each (DuckDB and PostgreSQL 12+ take the hint; elsewhere it is left out). -#}
{% macro cte_not_materialized() -%}
    {{ return(adapter.dispatch('cte_not_materialized', 'crmflow')()) }}
{%- endmacro %}

{% macro default__cte_not_materialized() -%}
{%- endmacro %}

{% macro duckdb__cte_not_materialized() -%}
    not materialized
{%- endmacro %}

{% macro postgres__cte_not_materialized() -%}
    not materialized
{%- endmacro %}

{#- `expression` compared byte by byte (code point order for UTF-8), whatever the database's
    collation: min()/max() and tie-breaking order by on text must pick the same row on every
    engine (DuckDB compares bytes; a PostgreSQL database with an en-US collation does not). -#}
{% macro binary_collation(expression) -%}
    {{ return(adapter.dispatch('binary_collation', 'crmflow')(expression)) }}
{%- endmacro %}

{% macro default__binary_collation(expression) -%}
    {{ expression }}
{%- endmacro %}

{% macro postgres__binary_collation(expression) -%}
    ({{ expression }} collate "C")
{%- endmacro %}
