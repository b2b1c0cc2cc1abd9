{#- Session/database set-up every run needs before models execute. -#}
{% macro stratpos_on_run_start() -%}
    {{ return(adapter.dispatch('stratpos_on_run_start', 'stratpos')()) }}
{%- endmacro %}

{% macro default__stratpos_on_run_start() -%}
    select 1
{%- endmacro %}

{#- DuckDB divides DECIMALs into DOUBLE; exact_div() needs its long-division macro. -#}
{% macro duckdb__stratpos_on_run_start() -%}
    {{ duckdb_exact_div_macro() }}
{%- endmacro %}

{#- MySQL 8 caps recursive CTEs at 1000 iterations by default (MariaDB does not). -#}
{% macro recursion_limit() -%}
    {{ return(adapter.dispatch('recursion_limit', 'stratpos')()) }}
{%- endmacro %}

{% macro default__recursion_limit() -%}
    {% if target.type == 'mysql' %}set session cte_max_recursion_depth = 100000000{% else %}select 1{% endif %}
{%- endmacro %}

{% macro duckdb__recursion_limit() -%}
    select 1
{%- endmacro %}
