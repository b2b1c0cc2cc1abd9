-- SPEC §6: strategy_performance's trade statistics per account, strategy and symbol, with the
-- open exposure split by side (quantities of one symbol add up, unlike across symbols).
with positions as (
    select * from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

sums as (
    select
        account_id,
        strategy_id,
        symbol,
        {{ trade_stats_sums() }},
        count(case when side = 'LONG' then 1 end) as long_positions,
        count(case when side = 'SHORT' then 1 end) as short_positions,
        sum(case when side = 'LONG' and status <> 'closed' then open_quantity else 0 end) as long_open_sum,
        sum(case when side = 'SHORT' and status <> 'closed' then open_quantity else 0 end) as short_open_sum
    from positions
    group by account_id, strategy_id, symbol
),

final as (
    select
        concat(account_id, ':', strategy_id, ':', symbol) as strategy_symbol_key,
        account_id,
        strategy_id,
        symbol,
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
