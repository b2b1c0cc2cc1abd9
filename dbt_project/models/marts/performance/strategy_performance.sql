-- SPEC §6: one row per account, strategy and margin asset — the leaderboard. Trade statistics
-- come from its closed strategy positions, money totals from all its positions, the drawdown
-- and the Sharpe/Sortino ratios from its daily net PnL curve (strategy_daily_pnl). Amounts of
-- different assets are never added (a strategy trading USDT- and BTC-margined contracts has
-- two rows), and so are the trades ranked, counted into streaks and compared per asset. Buckets
-- (strategy_id 'unattributed') are not strategies and are left out.
with positions as (
    -- a symbol whose margin asset nothing names (strategy_positions.margin_asset NULL) is
    -- kept apart as 'unknown:{symbol}' rather than added to another asset
    select *, coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

daily as (
    select * from {{ ref('strategy_daily_pnl') }}
),

sums as (
    select
        account_id,
        strategy_id,
        asset_group,
        {{ trade_stats_sums() }},
        count(case when close_reason = 'take_profit' then 1 end) as take_profit_closes,
        count(case when close_reason = 'stop_loss' then 1 end) as stop_loss_closes,
        count(case when close_reason = 'manual' then 1 end) as manual_closes,
        count(case when close_reason = 'external' then 1 end) as external_closes,
        count(case when close_reason = 'liquidation' then 1 end) as liquidation_closes,
        sum(case when status <> 'closed' then open_quantity else 0 end) as open_quantity_sum
    from positions
    group by account_id, strategy_id, asset_group
),

outcomes as (
    select
        account_id,
        strategy_id,
        asset_group,
        strategy_position_id,
        exit_time_ms,
        {{ trade_outcome('realized_pnl_net') }} as outcome
    from positions
    where status = 'closed'
),

islands as (
    -- gaps and islands: consecutive trades with the same outcome share (overall rank − rank within the outcome)
    select
        account_id,
        strategy_id,
        asset_group,
        outcome,
        {{ to_int('row_number() over (partition by account_id, strategy_id, asset_group order by exit_time_ms, strategy_position_id)') }}
        - {{ to_int('row_number() over (partition by account_id, strategy_id, asset_group, outcome order by exit_time_ms, strategy_position_id)') }}
            as island
    from outcomes
),

streaks as (
    select account_id, strategy_id, asset_group, outcome, island, count(*) as streak_length
    from islands
    group by account_id, strategy_id, asset_group, outcome, island
),

longest_streaks as (
    select
        account_id,
        strategy_id,
        asset_group,
        max(case when outcome = 'win' then streak_length else 0 end) as max_consecutive_wins,
        max(case when outcome = 'loss' then streak_length else 0 end) as max_consecutive_losses
    from streaks
    group by account_id, strategy_id, asset_group
),

daily_stats as (
    select
        account_id,
        strategy_id,
        margin_asset as asset_group,
        count(*) as active_days,
        sum(net_pnl) as daily_net_sum,
        max(drawdown) as max_drawdown,
        avg({{ to_double('net_pnl') }}) as mean_daily,
        stddev_samp({{ to_double('net_pnl') }}) as stddev_daily,
        sqrt(avg(power({{ to_double('case when net_pnl < 0 then net_pnl else 0 end') }}, 2))) as downside_deviation
    from daily
    group by account_id, strategy_id, margin_asset
),

final as (
    select
        concat(s.account_id, ':', s.strategy_id, ':', s.asset_group) as strategy_key,
        s.account_id,
        s.strategy_id,
        s.asset_group as margin_asset,
        s.positions_total,
        s.positions_open,
        s.positions_partial,
        s.positions_closed,
        s.positions_open + s.positions_partial as positions_holding,
        {{ trade_stats_ratios() }},
        s.take_profit_closes,
        s.stop_loss_closes,
        s.manual_closes,
        s.external_closes,
        s.liquidation_closes,
        {{ safe_div('s.take_profit_closes', 's.positions_closed', 18) }} as take_profit_rate,
        {{ safe_div('s.stop_loss_closes', 's.positions_closed', 18) }} as stop_loss_rate,
        {{ safe_div('s.manual_closes', 's.positions_closed', 18) }} as manual_rate,
        {{ safe_div('s.external_closes', 's.positions_closed', 18) }} as external_rate,
        {{ safe_div('s.liquidation_closes', 's.positions_closed', 18) }} as liquidation_rate,
        {{ to_int('coalesce(ls.max_consecutive_wins, 0)') }} as max_consecutive_wins,
        {{ to_int('coalesce(ls.max_consecutive_losses, 0)') }} as max_consecutive_losses,
        {{ to_int('d.active_days') }} as active_days,
        {{ safe_div('d.daily_net_sum', 'd.active_days', 18) }} as avg_daily_net_pnl,
        {{ dec18('d.max_drawdown') }} as max_drawdown,
        {{ to_double(
            'case when d.active_days >= 2 and d.stddev_daily > 0 then d.mean_daily / d.stddev_daily * sqrt(365) end'
        ) }} as sharpe_ratio,
        {{ to_double(
            'case when d.active_days >= 2 and d.downside_deviation > 0 then d.mean_daily / d.downside_deviation * sqrt(365) end'
        ) }} as sortino_ratio,
        {{ dec18('s.open_quantity_sum') }} as open_quantity
    from sums as s
    left join longest_streaks as ls
        on s.account_id = ls.account_id and s.strategy_id = ls.strategy_id and s.asset_group = ls.asset_group
    left join daily_stats as d
        on s.account_id = d.account_id and s.strategy_id = d.strategy_id and s.asset_group = d.asset_group
)

select * from final
