{#-
  UTC calendar days as integers (days since 1970-01-01), so a date spine is integer
  arithmetic. Integer division: MySQL rounds `/` to div_precision_increment places, which
  would move the last seconds of a day into the next one.
-#}
{% macro ms_to_day_no(column) -%}
    {{ return(adapter.dispatch('ms_to_day_no', 'stratpos')(column)) }}
{%- endmacro %}

{% macro default__ms_to_day_no(column) -%}
    cast(({{ column }}) div 86400000 as signed)
{%- endmacro %}

{% macro duckdb__ms_to_day_no(column) -%}
    cast(({{ column }}) // 86400000 as bigint)
{%- endmacro %}

{#- The UTC date of a day number from ms_to_day_no. -#}
{% macro day_no_to_date(day_no) -%}
    cast({{ ms_to_timestamp('(' ~ day_no ~ ') * 86400000') }} as date)
{%- endmacro %}
