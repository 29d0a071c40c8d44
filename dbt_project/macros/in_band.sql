{#- True when `value` lies in the seed band [lower, upper): lower inclusive, upper exclusive, a null
    bound is open. One definition for every band seed (B2B amount bands, score items, grade bands). -#}
{% macro in_band(value, lower, upper) -%}
    ({{ lower }} is null or {{ value }} >= {{ lower }})
    and ({{ upper }} is null or {{ value }} < {{ upper }})
{%- endmacro %}
