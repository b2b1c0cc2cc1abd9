{#-
  A DOUBLE, for the few metrics that need a square root (Sharpe, Sortino). Everything else
  in the marts stays exact DECIMAL. The explicit cast also keeps MariaDB from creating
  DOUBLE columns with a display scale (which rounds stored values) in CREATE TABLE AS.
-#}
{% macro to_double(expr) -%}
    cast({{ expr }} as double)
{%- endmacro %}
