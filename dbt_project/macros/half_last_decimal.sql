{#- Half a unit of the last non-zero decimal place of a DECIMAL(38, 18) value (0.5 for an integer,
    0.005 for 70.92, …): the rounding bound of a number shown to as many decimals as it has. -#}
{% macro half_last_decimal(expr) -%}
    case
    {%- for d in range(0, 18) %}
        when {{ expr }} = round({{ expr }}, {{ d }}) then cast(0.{{ '0' * d }}5 as decimal(38, 19))
    {%- endfor %}
        else cast(0.0000000000000000005 as decimal(38, 19))
    end
{%- endmacro %}
