{#- Apache Spark implementations of the project's cross-database macros (target spark,
    profiles.yml; docs/scaling.md). The session runs with spark.sql.session.timeZone=UTC: Spark's
    TIMESTAMP is an instant shown and cast in the session time zone, so with UTC it behaves like
    DuckDB's timestamptz under TimeZone=UTC. -#}

{% macro spark__type_timestamptz() -%}
    timestamp
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{#- JSON: get_json_object gives the text of a scalar (numbers as written, objects as JSON) and null
    for a missing key, like DuckDB's json_extract_string. -#}
{% macro spark__json_text(column, keys) -%}
    get_json_object({{ column }}, '$.{{ keys | join(".") }}')
{%- endmacro %}

{#- One row per element of a JSON array (each element as JSON text), with its 1-based position;
    null, invalid or non-array JSON gives no rows (lateral view without outer). -#}
{% macro spark__json_array_elements(column, element_alias, index_alias) -%}
    lateral view inline(transform(from_json({{ column }}, 'array<string>'),
        (element, position) -> struct(element, position + 1))) json_elements as {{ element_alias }}, {{ index_alias }}
{%- endmacro %}

{% macro spark__epoch_microseconds(column) -%}
    unix_micros({{ column }})
{%- endmacro %}

{% macro spark__floor_div(dividend, divisor) -%}
    (({{ dividend }}) div ({{ divisor }}))
{%- endmacro %}

{% macro spark__md5_bigint(text_expression) -%}
    cast(conv(substr(md5({{ text_expression }}), 1, 15), 16, 10) as bigint)
{%- endmacro %}

{#- Spark's round() of a double rounds its shortest decimal text (0.00015 gives 0.0002); DuckDB
    rounds the binary value (0.0001): the same steps as postgres__round_double, in doubles. -#}
{% macro spark__round_double(expression, digits) -%}
    {{ crmflow.postgres__round_double(expression, digits) }}
{%- endmacro %}

{#- The business wall time as a zone-less timestamp, as DuckDB's timezone(zone, timestamptz):
    from_utc_timestamp shifts the instant, and the cast to timestamp_ntz reads it in UTC. -#}
{% macro spark__to_business_ts(column) -%}
    cast(from_utc_timestamp({{ column }}, '{{ var("business_timezone") }}') as timestamp_ntz)
{%- endmacro %}

{#- dbt-spark's dateadd goes through to_unix_timestamp (whole seconds) and a date; this keeps the
    microseconds and adds calendar units to the instant in the session time zone (UTC). -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
    timestampadd({{ datepart }}, {{ interval }}, {{ from_date_or_timestamp }})
{%- endmacro %}

{#- Boundaries crossed, as on DuckDB and PostgreSQL: calendar days between the dates, and months
    between the calendar months (dbt-spark's month form goes through months_between). -#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- if datepart == 'day' -%}
    datediff(cast({{ second_date }} as date), cast({{ first_date }} as date))
    {%- elif datepart == 'month' -%}
    ((year({{ second_date }}) - year({{ first_date }})) * 12 + month({{ second_date }}) - month({{ first_date }}))
    {%- else -%}
    {{ exceptions.raise_compiler_error("datediff by " ~ datepart ~ " is not implemented for spark (macros/cross_db/spark.sql)") }}
    {%- endif -%}
{%- endmacro %}

{#- The materialization of the incremental models: 'incremental' (delete+insert) where the
    warehouse can delete rows, 'table' on plain Spark (parquet tables have no DELETE or MERGE
    without Delta Lake), so every Spark build recomputes them in full, and the histories
    (customer_lifecycle_history, customer_value_tier_history, customer_segment_history) hold
    only the current spells. On Databricks, Delta tables take incremental_strategy='merge'
    (docs/scaling.md). Their post-hooks (tombstone deletes, watermarks) only serve the
    incremental runs and are left out on Spark. -#}
{% macro incremental_or_table() -%}
    {{ return('table' if target.type == 'spark' else 'incremental') }}
{%- endmacro %}
