{#- Version hash of a raw_orders row for the incremental stg_shop__order_items: a new version of the
    order (updated_at, _loaded_at) or a change of what converts its lines (the seed fx_rates, var
    reporting_currency) changes it. `prefix` is the table alias with its dot, or ''. bit_xor is an
    aggregate on DuckDB and PostgreSQL 14+. -#}
{% macro order_version_hash(prefix='') -%}
    {%- set rates_hash -%}
        (select bit_xor({{ row_hash(['upper(trim(currency))', 'rate_to_reporting']) }}) from {{ ref('fx_rates') }})
    {%- endset -%}
    {{ row_hash([prefix ~ 'order_id', prefix ~ 'updated_at', prefix ~ '_loaded_at', rates_hash,
                 "upper(trim('" ~ var('reporting_currency') ~ "'))"]) }}
{%- endmacro %}
