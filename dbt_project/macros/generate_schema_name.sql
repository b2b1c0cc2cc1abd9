{#- The one place schema names are decided: {prefix}{layer}, exactly as SPEC §2 names them. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set prefix = env_var('STRATPOS_SCHEMA_PREFIX', '') -%}
    {%- if custom_schema_name is none -%}
        {{ prefix }}marts
    {%- else -%}
        {{ prefix }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
