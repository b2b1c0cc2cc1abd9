{#- Integer and text casts spelled the way each warehouse accepts them. -#}
{% macro to_int(expr) -%}
    {{ return(adapter.dispatch('to_int', 'stratpos')(expr)) }}
{%- endmacro %}

{% macro default__to_int(expr) -%}
    cast({{ expr }} as signed)
{%- endmacro %}

{% macro duckdb__to_int(expr) -%}
    cast({{ expr }} as bigint)
{%- endmacro %}

{% macro to_text(expr) -%}
    {{ return(adapter.dispatch('to_text', 'stratpos')(expr)) }}
{%- endmacro %}

{% macro default__to_text(expr) -%}
    cast({{ expr }} as char)
{%- endmacro %}

{% macro duckdb__to_text(expr) -%}
    cast({{ expr }} as varchar)
{%- endmacro %}

{#- An identifier column of bounded width. MariaDB types a concat() by the sum of its parts' widths;
    past 250 characters (1000 bytes in utf8mb4) its temporary tables cannot index the column, and
    every join on it falls back to a block nested loop (quadratic at a million allocations).
    Ids here are at most 141 characters. -#}
{% macro id_text(expr) -%}
    {{ return(adapter.dispatch('id_text', 'stratpos')(expr)) }}
{%- endmacro %}

{#- the raw tables' collation: joins between columns of different collations cannot use an index -#}
{% macro default__id_text(expr) -%}
    cast({{ expr }} as char(191)) collate utf8mb4_bin
{%- endmacro %}

{% macro duckdb__id_text(expr) -%}
    cast({{ expr }} as varchar)
{%- endmacro %}

{#- Exact DECIMAL types: money/prices with 18 decimals, quantities with Binance's 8. -#}
{% macro dec18(expr) -%}
    cast({{ expr }} as decimal(38, 18))
{%- endmacro %}

{% macro qty8(expr) -%}
    cast({{ expr }} as decimal(30, 8))
{%- endmacro %}

{#- A MySQL index on a model's table, or on `relation` (a side table); DuckDB needs none. Use as a
    post-hook, or run it. -#}
{% macro add_index(columns, relation=none) -%}
    {{ return(adapter.dispatch('add_index', 'stratpos')(columns, relation if relation is not none else this)) }}
{%- endmacro %}

{% macro default__add_index(columns, relation) -%}
    {%- set name = 'ix_' ~ local_md5(relation.identifier ~ columns | join('_'))[:20] -%}
    {%- set found = run_query(
        "select count(*) from information_schema.statistics where table_schema = '" ~ relation.schema
        ~ "' and table_name = '" ~ relation.identifier ~ "' and index_name = '" ~ name ~ "'"
    ) if execute else none -%}
    {%- if found is not none and found.rows[0][0] | int > 0 -%}
    select 1
    {%- else -%}
    create index {{ name }} on {{ relation }} ({{ columns | join(', ') }})
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__add_index(columns, relation) -%}
    select 1
{%- endmacro %}
