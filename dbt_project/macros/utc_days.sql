{#-
  UTC calendar days as integers (days since 1970-01-01), so a date spine is integer
  arithmetic. Integer division: MySQL rounds `/` to div_precision_increment places, which
  would move the last seconds of a day into the next one.
-#}
{% macro ms_to_day_no(column) -%}
    {{ ms_bucket(column, 86400000) }}
{%- endmacro %}

{#- The number of the width_ms-wide time bucket holding an epoch-millisecond time (integer division). -#}
{% macro ms_bucket(column, width_ms) -%}
    {{ return(adapter.dispatch('ms_bucket', 'stratpos')(column, width_ms)) }}
{%- endmacro %}

{% macro default__ms_bucket(column, width_ms) -%}
    cast(({{ column }}) div {{ width_ms }} as signed)
{%- endmacro %}

{% macro duckdb__ms_bucket(column, width_ms) -%}
    cast(({{ column }}) // {{ width_ms }} as bigint)
{%- endmacro %}

{#- The UTC date of a day number from ms_to_day_no. -#}
{% macro day_no_to_date(day_no) -%}
    cast({{ ms_to_timestamp('(' ~ day_no ~ ') * 86400000') }} as date)
{%- endmacro %}
