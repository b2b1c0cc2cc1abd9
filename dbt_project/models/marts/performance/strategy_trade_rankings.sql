-- SPEC §6: every closed trade (closed strategy position) of every strategy, ranked best to
-- worst and worst to best by realized_pnl_net within its account, strategy and margin asset
-- (1 BTC and 1 USDT are not comparable, so each asset has its own ranking); BI filters
-- best_rank <= N or worst_rank <= N. Ties go to the earlier exit, then the position id; a
-- trade without a realized_pnl_net (an unpriced conversion) comes last in both rankings.
with positions as (
    -- a symbol whose margin asset nothing names (strategy_positions.margin_asset NULL) is
    -- kept apart as 'unknown:{symbol}' rather than added to another asset
    select *, coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed' and status = 'closed'
),

ranked as (
    select
        *,
        row_number() over (
            partition by account_id, strategy_id, asset_group
            order by
                case when realized_pnl_net is null then 1 else 0 end asc,
                realized_pnl_net desc,
                exit_time_ms asc,
                strategy_position_id asc
        ) as best_rank,
        row_number() over (
            partition by account_id, strategy_id, asset_group
            order by
                case when realized_pnl_net is null then 1 else 0 end asc,
                realized_pnl_net asc,
                exit_time_ms asc,
                strategy_position_id asc
        ) as worst_rank,
        count(*) over (partition by account_id, strategy_id, asset_group) as strategy_trades
    from positions
),

final as (
    select
        strategy_position_id,
        account_id,
        strategy_id,
        signal_id,
        symbol,
        asset_group as margin_asset,
        side,
        exchange_position_id,
        entry_time,
        exit_time,
        entry_quantity,
        entry_price,
        exit_price,
        close_reason,
        {{ trade_outcome('realized_pnl_net') }} as outcome,
        realized_pnl,
        realized_pnl_pct,
        fees,
        other_fees,
        funding_fees,
        other_income,
        realized_pnl_net,
        holding_seconds,
        {{ to_int('best_rank') }} as best_rank,
        {{ to_int('worst_rank') }} as worst_rank,
        {{ to_int('strategy_trades') }} as strategy_trades
    from ranked
)

select * from final
