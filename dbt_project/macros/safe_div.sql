{#-
  exact_div, or NULL when the denominator is 0 or NULL (MariaDB in strict mode raises on a
  division by zero inside CREATE TABLE … AS SELECT instead of returning NULL).
  `scale` as in exact_div; 18 suffices when both operands have at most 18 decimals.
-#}
{% macro safe_div(numerator, denominator, scale=26) -%}
    case
        when ({{ denominator }}) is null or ({{ denominator }}) = 0 then null
        else {{ exact_div(numerator, denominator, scale) }}
    end
{%- endmacro %}
