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

{#- Recursive CTEs are capped at 1000 iterations by default: MySQL 8 by cte_max_recursion_depth,
    MariaDB by max_recursive_iterations. An episode can have many more legs. -#}
{% macro recursion_limit() -%}
    {{ return(adapter.dispatch('recursion_limit', 'stratpos')()) }}
{%- endmacro %}

{% macro default__recursion_limit() -%}
    {% if target.type == 'mysql' -%}
        set session cte_max_recursion_depth = 100000000
    {%- else -%}
        set session max_recursive_iterations = 100000000
    {%- endif %}
{%- endmacro %}

{% macro duckdb__recursion_limit() -%}
    select 1
{%- endmacro %}
