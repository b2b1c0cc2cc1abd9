{#- A UTC timestamp (as ms_to_timestamp writes them) back to epoch milliseconds, independent of the session time zone. -#}
{% macro timestamp_to_ms(column) -%}
    {{ return(adapter.dispatch('timestamp_to_ms', 'stratpos')(column)) }}
{%- endmacro %}

{% macro default__timestamp_to_ms(column) -%}
    cast(timestampdiff(microsecond, cast('1970-01-01 00:00:00' as datetime(3)), {{ column }}) div 1000 as signed)
{%- endmacro %}

{% macro duckdb__timestamp_to_ms(column) -%}
    epoch_ms({{ column }})
{%- endmacro %}
