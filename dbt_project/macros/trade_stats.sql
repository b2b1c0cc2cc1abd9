{#-
  SPEC §6 trade statistics over rows of strategy_positions, shared by strategy_performance
  and strategy_symbol_performance so both compute every metric the same way.

  trade_stats_sums(): aggregates, for a SELECT … GROUP BY over strategy_positions.
  trade_stats_ratios(): the published columns, selected from the CTE holding those sums.
  Trades are closed positions; wins/losses/breakevens by the sign of realized_pnl_net (a
  position whose other fees or income had no conversion price has no realized_pnl_net: it is
  counted in unpriced_positions, in no outcome, and left out of the money sums).
  Money is summed as is: the caller groups by margin_asset, so no sum adds two assets.
-#}
{% macro trade_stats_sums() -%}
    count(*) as positions_total,
    count(case when status = 'open' then 1 end) as positions_open,
    count(case when status = 'partial' then 1 end) as positions_partial,
    count(case when status = 'closed' then 1 end) as positions_closed,
    count(case when status = 'closed' and realized_pnl_net > 0 then 1 end) as wins,
    count(case when status = 'closed' and realized_pnl_net < 0 then 1 end) as losses,
    count(case when status = 'closed' and realized_pnl_net = 0 then 1 end) as breakevens,
    count(case when realized_pnl_net is null then 1 end) as unpriced_positions,
    sum(case when status = 'closed' and realized_pnl_net > 0 then realized_pnl_net else 0 end) as gross_profit_sum,
    sum(case when status = 'closed' and realized_pnl_net < 0 then realized_pnl_net else 0 end) as gross_loss_sum,
    sum(case when status = 'closed' then realized_pnl_net else 0 end) as closed_net_sum,
    max(case when status = 'closed' then realized_pnl_net end) as best_trade_sum,
    min(case when status = 'closed' then realized_pnl_net end) as worst_trade_sum,
    sum(realized_pnl) as realized_pnl_sum,
    sum(fees) as fees_sum,
    sum(other_fees) as other_fees_sum,
    sum(funding_fees) as funding_fees_sum,
    sum(other_income) as other_income_sum,
    sum(realized_pnl_net) as realized_pnl_net_sum,
    sum(unrealized_pnl) as unrealized_pnl_sum,
    sum(case when status = 'closed' then holding_seconds end) as holding_sum,
    count(case when status = 'closed' then holding_seconds end) as holding_n,
    sum(case when status = 'closed' and realized_pnl_net > 0 then holding_seconds end) as holding_win_sum,
    sum(case when status = 'closed' and realized_pnl_net < 0 then holding_seconds end) as holding_loss_sum,
    min(entry_time_ms) as first_entry_ms,
    max(exit_time_ms) as last_exit_ms
{%- endmacro %}

{% macro trade_stats_ratios() -%}
    wins,
    losses,
    breakevens,
    unpriced_positions,
    {{ safe_div('wins', 'wins + losses', 18) }} as win_rate,
    {{ dec18('gross_profit_sum') }} as gross_profit,
    {{ dec18('gross_loss_sum') }} as gross_loss,
    {{ safe_div('gross_profit_sum', 'wins', 18) }} as avg_win,
    {{ safe_div('gross_loss_sum', 'losses', 18) }} as avg_loss,
    case
        when wins > 0 and losses > 0
            then {{ exact_div('gross_profit_sum * losses', '(0 - gross_loss_sum) * wins', 18) }}
    end as payoff_ratio,
    case when losses > 0 then {{ exact_div('gross_profit_sum', '0 - gross_loss_sum', 18) }} end as profit_factor,
    {{ safe_div('closed_net_sum', 'positions_closed', 18) }} as expectancy,
    {{ dec18('best_trade_sum') }} as best_trade_pnl,
    {{ dec18('worst_trade_sum') }} as worst_trade_pnl,
    {{ dec18('realized_pnl_sum') }} as realized_pnl,
    {{ dec18('fees_sum') }} as fees,
    {{ dec18('other_fees_sum') }} as other_fees,
    {{ dec18('funding_fees_sum') }} as funding_fees,
    {{ dec18('other_income_sum') }} as other_income,
    {{ dec18('realized_pnl_net_sum') }} as realized_pnl_net,
    {{ dec18('closed_net_sum') }} as closed_realized_pnl_net,
    {{ safe_div('holding_sum', 'holding_n', 18) }} as avg_holding_seconds,
    {{ safe_div('holding_win_sum', 'wins', 18) }} as avg_holding_seconds_winners,
    {{ safe_div('holding_loss_sum', 'losses', 18) }} as avg_holding_seconds_losers,
    {{ dec18('unrealized_pnl_sum') }} as unrealized_pnl,
    {{ ms_to_timestamp('first_entry_ms') }} as first_entry_at,
    {{ ms_to_timestamp('last_exit_ms') }} as last_exit_at
{%- endmacro %}
