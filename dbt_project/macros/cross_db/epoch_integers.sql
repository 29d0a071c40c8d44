{#- Microseconds since the epoch of a timestamptz, as bigint, exact on both engines (PostgreSQL's
    extract(epoch ...) is numeric). The Python twin is crmflow/warehouse/dialect.py epoch_us. -#}
{% macro epoch_microseconds(column) -%}
    {{ return(adapter.dispatch('epoch_microseconds', 'crmflow')(column)) }}
{%- endmacro %}

{% macro default__epoch_microseconds(column) -%}
    cast(extract(epoch from {{ column }}) * 1000000 as bigint)
{%- endmacro %}

{% macro duckdb__epoch_microseconds(column) -%}
    epoch_us({{ column }})
{%- endmacro %}

{#- Integer division of non-negative integers: DuckDB's `/` on integers gives a double, its `//`
    truncates; PostgreSQL's `/` truncates. The Python twin is dialect.floor_div. -#}
{% macro floor_div(dividend, divisor) -%}
    {{ return(adapter.dispatch('floor_div', 'crmflow')(dividend, divisor)) }}
{%- endmacro %}

{% macro default__floor_div(dividend, divisor) -%}
    (({{ dividend }}) / ({{ divisor }}))
{%- endmacro %}

{% macro duckdb__floor_div(dividend, divisor) -%}
    (({{ dividend }}) // ({{ divisor }}))
{%- endmacro %}

{#- `total` (a decimal with at most 2 decimals) / `count` (an integer > 0), rounded to cents half away
    from zero, as decimal(18, 2): exact, and the same on every engine (DuckDB divides decimals in
    doubles, where 24.69 / 2 = 12.344999.. gives 12.34; PostgreSQL's numeric gives 12.35). -#}
{% macro mean_amount(total, count) -%}
    {%- set cents = 'cast((' ~ total ~ ') * 100 as bigint)' -%}
    cast(cast((case when {{ cents }} < 0 then -1 else 1 end)
              * {{ floor_div('2 * abs(' ~ cents ~ ') + (' ~ count ~ ')', '2 * (' ~ count ~ ')') }}
         as decimal(18, 2)) * 0.01 as decimal(18, 2))
{%- endmacro %}
