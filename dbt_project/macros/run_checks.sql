{#- on-run-start (dbt_project.yml): refuse, in one message and before any model, a run that would
    quietly do the wrong thing (issue 16; docs/architecture.md "dbt on its own").

    1. Any target but `dev` (the production warehouse: crmflow's `duckdb` and `postgres` outputs)
       needs the as-of given on the command line (`--vars '{as_of: ...}'`, which crmflow always
       passes): the project default would rebuild production as of 2026-01-01.
    2. The sources the selected nodes read must exist: on an empty warehouse a bare `dbt build` says
       what to run first instead of failing on a missing relation.
    Only commands that build or test (run, build, test, seed, snapshot) are checked. -#}
{% macro crmflow_run_checks() %}
  {%- if execute and flags.WHICH in ["run", "build", "test", "seed", "snapshot", "retry"] -%}
    {%- set cli_vars = invocation_args_dict.get("vars") or {} -%}
    {%- if cli_vars is string -%}{%- set cli_vars = fromyaml(cli_vars) or {} -%}{%- endif -%}
    {%- if target.name != "dev" and "as_of" not in cli_vars -%}
      {{ exceptions.raise_compiler_error(
          "dbt target '" ~ target.name ~ "' is the production warehouse and needs the as-of given "
          ~ "explicitly: crmflow run --as-of 2026-11-22 (or dbt " ~ flags.WHICH ~ " --target " ~ target.name
          ~ " --vars '{as_of: \"2026-11-22T00:00:00+00:00\"}'); bare dbt commands use the dev target") }}
    {%- endif -%}
    {%- set missing = [] -%}
    {%- for unique_id in crmflow_selected_sources() -%}
      {%- set source = graph.sources[unique_id] -%}
      {%- if adapter.get_relation(database=source.database, schema=source.schema,
                                  identifier=source.identifier) is none -%}
        {%- do missing.append(source.schema ~ "." ~ source.identifier) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- if missing -%}
      {{ exceptions.raise_compiler_error(
          "dbt target '" ~ target.name ~ "' has no " ~ missing | join(", ") ~ " yet: load the landing files "
          ~ "first with `crmflow run` (the production warehouse, CRMFLOW_WAREHOUSE)"
          ~ (", or for the dev target CRMFLOW_WAREHOUSE=var/dev.duckdb crmflow run" if target.name == "dev" else "")
          ~ "; `crmflow prepare` only parses the project") }}
    {%- endif -%}
  {%- endif -%}
{% endmacro %}

{#- The unique ids of the sources the selected nodes read, sorted (also macros/statistics.sql). -#}
{% macro crmflow_selected_sources() %}
  {%- set needed = [] -%}
  {%- for unique_id in selected_resources -%}
    {%- set node = graph.nodes.get(unique_id) -%}
    {%- if node -%}
      {%- for parent in node.depends_on.nodes if parent.startswith("source.") and parent not in needed -%}
        {%- do needed.append(parent) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(needed | sort) }}
{% endmacro %}
