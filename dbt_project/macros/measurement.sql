{#- Measurement constants (dbt_project/models/marts/measurement; the Python twin reads the same vars:
    crmflow/measurement/config.py). -#}

{#- The variant of a step without A/B variants: a real value, so group by and joins keep it. -#}
{% macro measurement_no_variant() -%}
    -
{%- endmacro %}

{#- The goal window of a journey without a goal block (or no longer configured), in seconds. -#}
{% macro measurement_default_window_seconds() -%}
    {{ (var('measurement_default_window_days') * 86400) | int }}
{%- endmacro %}

{#- The end of a goal window that starts at `start` and lasts `window_seconds` (null: the default). -#}
{% macro measurement_window_end(start, window_seconds) -%}
    {{ dbt.dateadd('second', 'coalesce(' ~ window_seconds ~ ', ' ~ measurement_default_window_seconds() ~ ')', start) }}
{%- endmacro %}
