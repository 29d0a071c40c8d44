{#- Where crmflow's own (non-dbt) tables live. DuckDB: everything in the target schema (main).
    PostgreSQL: raw inputs in crm_raw, operational state in crm_ops, and the dbt models in the
    target schema (crm_analytics, profiles.yml). Vars raw_schema / ops_schema override. The
    sources' YAML (staging/_sources.yml, marts/segments/_segments__sources.yml) repeats the
    raw_schema rule because YAML cannot call a macro: keep them in step. -#}
{% macro raw_schema() -%}
    {{ return(var('raw_schema', 'crm_raw' if target.type == 'postgres' else target.schema)) }}
{%- endmacro %}

{% macro ops_schema() -%}
    {{ return(var('ops_schema', 'crm_ops' if target.type == 'postgres' else target.schema)) }}
{%- endmacro %}
