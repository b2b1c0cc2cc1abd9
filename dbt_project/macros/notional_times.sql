{#-
  notional × quantity, exactly, at 26 decimals. A notional Σ q·p has 16 decimals for fill prices
  but up to 26 for an opening allocation priced at its recovered average (18 decimals, SPEC §4.1);
  DuckDB's DECIMAL(38) cannot hold 26 + 8 decimals of a product, so the notional is split into
  its 16-decimal part (× quantity: 24 decimals) and the remainder below 1e-16 (× quantity: tiny,
  held at 26 decimals). Exact wherever the product fits DECIMAL(38, 26) (|x| < 1e12).
-#}
{% macro notional_times(notional, quantity) -%}
    (cast({{ notional }} as decimal(38, 16)) * {{ qty8(quantity) }}
        + cast(cast(({{ notional }}) - cast({{ notional }} as decimal(38, 16)) as decimal(38, 26)) * {{ qty8(quantity) }} as decimal(38, 26)))
{%- endmacro %}
