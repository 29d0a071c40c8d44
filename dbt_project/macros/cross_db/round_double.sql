{#- round(x, digits) of a double, as a double, with DuckDB's rounding on every adapter so that
    the same data gives the same figures everywhere. DuckDB computes round(x * 10^d) / 10^d in
    doubles with halves away from zero. PostgreSQL has no round(double precision, int); going
    through numeric would round the decimal expansion of x instead (0.00015 is stored as
    0.000149999...: numeric gives 0.0002, DuckDB 0.0001), so it repeats DuckDB's steps. -#}
{% macro round_double(expression, digits) -%}
    {{ return(adapter.dispatch('round_double', 'crmflow')(expression, digits)) }}
{%- endmacro %}

{% macro default__round_double(expression, digits) -%}
    round({{ expression }}, {{ digits }})
{%- endmacro %}

{% macro postgres__round_double(expression, digits) -%}
    {%- set scale = 'cast(' ~ (10 ** digits) ~ ' as ' ~ type_double() ~ ')' -%}
    {%- set scaled = '(cast(' ~ expression ~ ' as ' ~ type_double() ~ ') * ' ~ scale ~ ')' -%}
    {#- abs(y) - floor(abs(y)) is exact in binary floating point, so the half test is exact -#}
    (case
        when abs({{ scaled }}) - floor(abs({{ scaled }})) >= 0.5 then ceil(abs({{ scaled }}))
        else floor(abs({{ scaled }}))
    end * sign({{ scaled }}) / {{ scale }})
{%- endmacro %}
