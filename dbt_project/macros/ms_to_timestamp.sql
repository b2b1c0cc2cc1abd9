{#- Epoch milliseconds (BIGINT) -> UTC timestamp with millisecond precision, independent of the session time zone. -#}
{% macro ms_to_timestamp(column) -%}
    {{ return(adapter.dispatch('ms_to_timestamp', 'stratpos')(column)) }}
{%- endmacro %}

{% macro default__ms_to_timestamp(column) -%}
    cast(date_add(cast('1970-01-01 00:00:00' as datetime(3)), interval ({{ column }}) * 1000 microsecond) as datetime(3))
{%- endmacro %}

{% macro duckdb__ms_to_timestamp(column) -%}
    make_timestamp(cast({{ column }} as bigint) * 1000)
{%- endmacro %}
