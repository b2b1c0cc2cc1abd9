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

{#- MariaDB merges simple CTEs into the outer query, which then joins the base table on a
    prefix of its index and filters the rest row by row; kept as derived tables, the CTEs get a
    key on every join column. Set off for one model and back on after it. -#}
{% macro derived_merge(on) -%}
    {{ return(adapter.dispatch('derived_merge', 'stratpos')(on)) }}
{%- endmacro %}

{% macro default__derived_merge(on) -%}
    set session optimizer_switch = 'derived_merge={{ "on" if on else "off" }}'
{%- endmacro %}

{% macro duckdb__derived_merge(on) -%}
    select 1
{%- endmacro %}
