{#- The conversion version of stg_shop__order_items: one bigint for what converts order lines (the
    seed fx_rates and var reporting_currency), the same value on every engine. A rate or the
    reporting currency changing changes it, so every order is recomputed. bit_xor is an aggregate
    on DuckDB and PostgreSQL 14+. -#}
{% macro order_conversion_version() -%}
    (select coalesce(bit_xor({{ md5_bigint("concat_ws('|', upper(trim(currency)), cast(rate_to_reporting as "
                                          ~ dbt.type_string() ~ "), upper(trim('" ~ var('reporting_currency')
                                          ~ "')))") }}), 0)
     from {{ ref('fx_rates') }})
{%- endmacro %}
