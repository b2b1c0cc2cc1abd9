{#-
  numerator / denominator rounded half away from zero to 18 decimals, exactly.

  MySQL/MariaDB divide DECIMALs exactly (to 30 places here). DuckDB divides DECIMALs
  into DOUBLE, which is not exact, so there both operands are brought to the same scale
  (`scale`, default 26: it must cover the digits of both), read as 128-bit integers and
  divided by long division, three digits at a time (stratpos_exact_div, created by
  on-run-start). Bounds on DuckDB: |numerator| < 1e12 and |denominator| < 1.7e9 at scale
  26 (1e14 and 1.7e11 at scale 24).
-#}
{% macro exact_div(numerator, denominator, scale=26) -%}
    {{ return(adapter.dispatch('exact_div', 'stratpos')(numerator, denominator, scale)) }}
{%- endmacro %}

{% macro default__exact_div(numerator, denominator, scale) -%}
    cast(round(cast({{ numerator }} as decimal(65, 30)) / cast({{ denominator }} as decimal(65, 30)), 18) as decimal(38, 18))
{%- endmacro %}

{% macro duckdb__exact_div(numerator, denominator, scale) -%}
    stratpos_exact_div(
        replace(cast(cast({{ numerator }} as decimal(38, {{ scale }})) as varchar), '.', '')::hugeint,
        replace(cast(cast({{ denominator }} as decimal(38, {{ scale }})) as varchar), '.', '')::hugeint
    )
{%- endmacro %}

{#- The DuckDB long division behind exact_div: six rounds of three digits, then rounding. -#}
{% macro duckdb_exact_div_macro() -%}
    {%- set steps = 6 -%}
    create or replace macro stratpos_exact_div_rem(r, d) as (r * 1000) % d;
    create or replace macro stratpos_exact_div(n, d) as (
        case
            when d = 0 then null
            else
                cast(
                    sign(n) * sign(d) * (
                        (abs(n) // abs(d)) * 1000000000000000000::hugeint
                        {%- for i in range(1, steps + 1) %}
                        {%- set r = namespace(expr='abs(n) % abs(d)') %}
                        {%- for _ in range(1, i) %}{% set r.expr = 'stratpos_exact_div_rem(' ~ r.expr ~ ', abs(d))' %}{% endfor %}
                        + (({{ r.expr }}) * 1000 // abs(d)) * {{ 10 ** (3 * (steps - i)) }}::hugeint
                        {%- endfor %}
                        {%- set r = namespace(expr='abs(n) % abs(d)') %}
                        {%- for _ in range(steps) %}{% set r.expr = 'stratpos_exact_div_rem(' ~ r.expr ~ ', abs(d))' %}{% endfor %}
                        + case when 2 * ({{ r.expr }}) >= abs(d) then 1 else 0 end
                    ) as decimal(38, 0)
                ) * cast(0.000000000000000001 as decimal(38, 18))
        end
    )
{%- endmacro %}
