{#- An exact decimal as its shortest text: no trailing zeros after the point, no trailing point
    ("0.012000000000000000" → "0.012", "5.000…" → "5", 0 → "0"). The same text on every warehouse,
    for values written into JSON (fees_by_asset). -#}
{% macro decimal_text(expr) -%}
    {{ return(adapter.dispatch('decimal_text', 'stratpos')(expr)) }}
{%- endmacro %}

{% macro default__decimal_text(expr) -%}
    case
        when ({{ expr }}) = 0 then '0'
        else trim(trailing '.' from trim(trailing '0' from cast(cast({{ expr }} as decimal(38, 18)) as char)))
    end
{%- endmacro %}

{% macro duckdb__decimal_text(expr) -%}
    case
        when ({{ expr }}) = 0 then '0'
        else rtrim(rtrim(cast(cast({{ expr }} as decimal(38, 18)) as varchar), '0'), '.')
    end
{%- endmacro %}
