{#- An amount in the reporting currency: `amount` times the cross rate `fx_rate` (see
    stg_shop__orders), rounded to the cent. fx_rate = 1.0 returns the amount untouched (no float
    round trip); a null fx_rate (currency without a rate) gives null. -#}
{% macro to_reporting_currency(amount, fx_rate) -%}
    case
        when {{ fx_rate }} = 1.0 then {{ amount }}
        else cast({{ round_double(amount ~ ' * ' ~ fx_rate, 2) }} as decimal(18, 2))
    end
{%- endmacro %}
