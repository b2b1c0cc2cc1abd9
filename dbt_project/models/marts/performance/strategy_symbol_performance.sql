-- SPEC §6: strategy_performance's trade statistics per account, strategy and symbol, with the
-- open exposure split by side (quantities of one symbol add up, unlike across symbols). A
-- symbol has one margin asset, so every amount of a row is in that row's margin_asset.
with positions as (
    -- a symbol whose margin asset nothing names (strategy_positions.margin_asset NULL) is
    -- kept apart as 'unknown:{symbol}' rather than added to another asset
    select *, coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

sums as (
    select
        account_id,
        strategy_id,
        symbol,
        asset_group,
        {{ trade_stats_sums() }},
        count(case when side = 'LONG' then 1 end) as long_positions,
        count(case when side = 'SHORT' then 1 end) as short_positions,
        sum(case when side = 'LONG' and status <> 'closed' then open_quantity else 0 end) as long_open_sum,
        sum(case when side = 'SHORT' and status <> 'closed' then open_quantity else 0 end) as short_open_sum
    from positions
    group by account_id, strategy_id, symbol, asset_group
),

final as (
    select
        concat(account_id, ':', strategy_id, ':', symbol) as strategy_symbol_key,
        account_id,
        strategy_id,
        symbol,
        asset_group as margin_asset,
        positions_total,
        positions_open,
        positions_partial,
        positions_closed,
        long_positions,
        short_positions,
        {{ trade_stats_ratios() }},
        {{ dec18('long_open_sum') }} as long_open_quantity,
        {{ dec18('short_open_sum') }} as short_open_quantity
    from sums
)

select * from final
