{#- SPEC §6: a closed trade is a win, a loss or breakeven by the sign of its realized_pnl_net. -#}
{% macro trade_outcome(net_pnl) -%}
    case when {{ net_pnl }} > 0 then 'win' when {{ net_pnl }} < 0 then 'loss' else 'breakeven' end
{%- endmacro %}
