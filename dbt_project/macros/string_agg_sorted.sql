{#- Concatenate `expr` over a group, ordered by `order_by`, separated by `sep`. -#}
{% macro string_agg_sorted(expr, order_by, sep=',') -%}
    {{ return(adapter.dispatch('string_agg_sorted', 'stratpos')(expr, order_by, sep)) }}
{%- endmacro %}

{% macro default__string_agg_sorted(expr, order_by, sep) -%}
    group_concat({{ expr }} order by {{ order_by }} separator '{{ sep }}')
{%- endmacro %}

{% macro duckdb__string_agg_sorted(expr, order_by, sep) -%}
    string_agg({{ expr }}, '{{ sep }}' order by {{ order_by }})
{%- endmacro %}
