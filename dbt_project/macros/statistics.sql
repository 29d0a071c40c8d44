{#- Planner statistics on PostgreSQL (docs/benchmarks.md "PostgreSQL fixes"). PostgreSQL plans from
    the statistics that only ANALYZE gathers (autovacuum is off on some servers and, when on, comes
    a minute after the next model has read the table). Without them every GROUP BY result is guessed
    at 200 rows and joined by nested loops: at 100k users int_tag_user_features did not finish.
    So on PostgreSQL dbt analyses what it has just built (post-hook of every table, incremental and
    seed, dbt_project.yml) and, before its first node, the source tables the selected nodes read
    (on-run-start: the raw tables and the Python outputs such as customer_clusters, operator_tasks;
    the ingest also analyses the raw tables after loading them). Other engines: nothing (an empty
    hook, which dbt skips). -#}
{% macro analyze_on_postgres() -%}
  {{ return(adapter.dispatch('analyze_on_postgres', 'crmflow')()) }}
{%- endmacro %}

{% macro default__analyze_on_postgres() -%}{%- endmacro %}

{% macro postgres__analyze_on_postgres() -%}
  {%- if config.get('materialized') in ['table', 'incremental', 'seed'] -%}
    analyze {{ this }}
  {%- endif -%}
{%- endmacro %}

{% macro analyze_sources_on_postgres() -%}
  {%- if execute and target.type == 'postgres' and flags.WHICH in ["run", "build", "seed", "snapshot", "retry"] -%}
    {%- set tables = [] -%}
    {%- for unique_id in crmflow_selected_sources() -%}
      {%- set source = graph.sources[unique_id] -%}
      {%- set relation = adapter.get_relation(database=source.database, schema=source.schema,
                                              identifier=source.identifier) -%}
      {%- if relation is not none and relation.type == 'table' -%}
        {%- do tables.append(relation.render()) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- if tables -%}
      analyze {{ tables | join(', ') }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
