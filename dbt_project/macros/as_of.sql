{#- The run's as-of time as a timestamptz literal, and the as-of calendar date in the business
    time zone. Models never call now(): the same data and as-of always give the same result. -#}
{% macro as_of_ts() -%}
    cast('{{ var("as_of") }}' as {{ type_timestamptz() }})
{%- endmacro %}

{% macro to_business_ts(column) -%}
    {{ return(adapter.dispatch('to_business_ts', 'crmflow')(column)) }}
{%- endmacro %}

{% macro default__to_business_ts(column) -%}
    ({{ column }} at time zone '{{ var("business_timezone") }}')
{%- endmacro %}

{% macro duckdb__to_business_ts(column) -%}
    {%- if var("business_timezone") | upper in ["UTC", "ETC/UTC"] -%}
    {#- Same value without the ICU calendar: the UTC wall time from the epoch (10x cheaper per row,
        and this runs on every event and order). -#}
    make_timestamp(epoch_us({{ column }}))
    {%- else -%}
    timezone('{{ var("business_timezone") }}', {{ column }})
    {%- endif -%}
{%- endmacro %}

{#- The UTC calendar date of a timestamptz, whatever the session time zone. -#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'crmflow')(column)) }}
{%- endmacro %}

{% macro default__utc_date(column) -%}
    cast({{ column }} at time zone 'UTC' as date)
{%- endmacro %}

{#- Spark's session runs in UTC (profiles.yml), where a timestamp's date is its UTC date. -#}
{% macro spark__utc_date(column) -%}
    cast({{ column }} as date)
{%- endmacro %}

{% macro business_date(column) -%}
    cast({{ to_business_ts(column) }} as date)
{%- endmacro %}

{% macro as_of_date() -%}
    {{ business_date(as_of_ts()) }}
{%- endmacro %}
