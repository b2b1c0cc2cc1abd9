{#- A join whose left side must drive. MySQL/MariaDB plan the recursive step of a CTE as a full
    scan of the joined table per iteration (quadratic in the legs of the longest episode);
    STRAIGHT_JOIN makes the previous iteration's rows probe the table's index instead. -#}
{% macro straight_join() -%}
    {{ return(adapter.dispatch('straight_join', 'stratpos')()) }}
{%- endmacro %}

{% macro default__straight_join() -%}
    straight_join
{%- endmacro %}

{% macro duckdb__straight_join() -%}
    inner join
{%- endmacro %}
