{#- SPEC §6: a closed trade is a win, a loss or breakeven by the sign of its realized_pnl_net;
    'unpriced' when that is NULL (a fee or income in another asset had no conversion price). -#}
{% macro trade_outcome(net_pnl) -%}
    case
        when {{ net_pnl }} > 0 then 'win'
        when {{ net_pnl }} < 0 then 'loss'
        when {{ net_pnl }} = 0 then 'breakeven'
        else 'unpriced'
    end
{%- endmacro %}
