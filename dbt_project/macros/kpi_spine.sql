{#- Calendar spines without a package or adapter-specific series function: a 0..99999 number
    table from cross-joined digits (portable SQL), turned into days or month starts between two
    dates held in columns start_col/end_col of `bounds` (a CTE name). -#}
{% macro kpi_numbers(power=5) -%}
    select
        {% for i in range(power) %}d{{ i }}.digit * {{ 10 ** i }}{% if not loop.last %} + {% endif %}{% endfor %} as n
    from
        {% for i in range(power) %}(
            select 0 as digit union all select 1 union all select 2 union all select 3 union all select 4
            union all select 5 union all select 6 union all select 7 union all select 8 union all select 9
        ) as d{{ i }}{% if not loop.last %}
        cross join {% endif %}{% endfor %}
{%- endmacro %}

{% macro kpi_day_spine(bounds, start_col='start_date', end_col='end_date') -%}
    select cast({{ dbt.dateadd('day', 'numbers.n', 'bounds.' ~ start_col) }} as date) as date_day
    from {{ bounds }} as bounds
    cross join ({{ kpi_numbers(5) }}) as numbers
    where numbers.n <= {{ dbt.datediff('bounds.' ~ start_col, 'bounds.' ~ end_col, 'day') }}
{%- endmacro %}

{% macro kpi_month_spine(bounds, start_col='start_month', end_col='end_month') -%}
    select cast({{ dbt.dateadd('month', 'numbers.n', 'bounds.' ~ start_col) }} as date) as month_start
    from {{ bounds }} as bounds
    cross join ({{ kpi_numbers(4) }}) as numbers
    where numbers.n <= {{ dbt.datediff('bounds.' ~ start_col, 'bounds.' ~ end_col, 'month') }}
{%- endmacro %}

{#- A 64-bit float for rates and averages (the KPI models' name for type_double, cross_db/types.sql). -#}
{% macro kpi_double() -%}
    {{ return(crmflow.type_double()) }}
{%- endmacro %}
