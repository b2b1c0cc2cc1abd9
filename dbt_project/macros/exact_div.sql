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

{#-
  The DuckDB long division behind exact_div: the integer part, then six rounds of three digits
  (remainder × 1000 fits a HUGEINT for the bounds above), then rounding half away from zero.

  DuckDB inlines a macro's arguments at every use and does not share the copies: the long
  division names n and d dozens of times, and each copy of an argument re-ran its whole
  expression (decimal → text → HUGEINT) — 8 exact divisions per row took 18 of the 20 s of
  strategy_positions at 300k fills. Each argument and each round's remainder is therefore bound
  once, as the parameter of a one-element list_transform lambda, and each round carries
  (quotient so far, remainder) forward instead of recomputing the remainder chain.
-#}
{% macro duckdb_exact_div_macro() -%}
    {%- set steps = 6 -%}
    {%- set ns = namespace(expr='struct_pack(q := stratpos_x.n // stratpos_x.d, r := stratpos_x.n % stratpos_x.d)') -%}
    {%- for i in range(steps) -%}
    {%- set s = 'stratpos_s' ~ i -%}
    {%- set ns.expr = 'list_transform([' ~ ns.expr ~ '], lambda ' ~ s ~ ': struct_pack(q := ' ~ s ~ '.q * 1000 + ('
        ~ s ~ '.r * 1000) // stratpos_x.d, r := (' ~ s ~ '.r * 1000) % stratpos_x.d))[1]' -%}
    {%- endfor %}
    create or replace macro stratpos_exact_div(n, d) as list_transform(
        [struct_pack(sgn := sign(n) * sign(d), n := abs(n), d := abs(d))],
        lambda stratpos_x: case
            when stratpos_x.d = 0 then null
            else cast(stratpos_x.sgn * list_transform(
                [{{ ns.expr }}],
                lambda stratpos_z: stratpos_z.q + case when 2 * stratpos_z.r >= stratpos_x.d then 1 else 0 end
            )[1] as decimal(38, 0)) * cast(0.000000000000000001 as decimal(38, 18))
        end
    )[1];
{%- endmacro %}
