{#- Version hash of a raw_orders row for the incremental stg_shop__order_items: a new version of the
    order (updated_at, _loaded_at) or a change of what converts its lines (the seed fx_rates, var
    reporting_currency) changes it. `prefix` is the table alias with its dot, or ''. -#}
{% macro order_version_hash(prefix='') -%}
    hash({{ prefix }}order_id, {{ prefix }}updated_at, {{ prefix }}_loaded_at,
         (select bit_xor(hash(upper(trim(currency)), rate_to_reporting)) from {{ ref('fx_rates') }}),
         upper(trim('{{ var("reporting_currency") }}')))
{%- endmacro %}
