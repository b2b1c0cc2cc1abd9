-- SPEC §6 TP vs SL analysis: one row per account, strategy, margin asset and close reason —
-- all five reasons for every strategy and margin asset it trades in, zeros included — with how
-- often each reason closed the strategy's trades in that asset and what those trades earned
-- (amounts of different margin assets are never added).
with positions as (
    -- a symbol whose margin asset nothing names (strategy_positions.margin_asset NULL) is
    -- kept apart as 'unknown:{symbol}' rather than added to another asset
    select *, coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

reasons as (
    select 'take_profit' as close_reason, 1 as reason_order
    union all
    select 'stop_loss', 2
    union all
    select 'manual', 3
    union all
    select 'external', 4
    union all
    select 'liquidation', 5
),

strategies as (
    select
        account_id,
        strategy_id,
        asset_group,
        count(case when status = 'closed' then 1 end) as strategy_closed
    from positions
    group by account_id, strategy_id, asset_group
),

by_reason as (
    select
        account_id,
        strategy_id,
        asset_group,
        close_reason,
        count(*) as closes,
        count(case when realized_pnl_net > 0 then 1 end) as wins,
        count(case when realized_pnl_net < 0 then 1 end) as losses,
        count(case when realized_pnl_net = 0 then 1 end) as breakevens,
        count(case when realized_pnl_net is null then 1 end) as unpriced,
        sum(realized_pnl) as realized_pnl_sum,
        sum(realized_pnl_net) as net_sum,
        sum(realized_pnl_pct) as pnl_pct_sum,
        sum(holding_seconds) as holding_sum
    from positions
    where status = 'closed'
    group by account_id, strategy_id, asset_group, close_reason
),

final as (
    select
        concat(s.account_id, ':', s.strategy_id, ':', s.asset_group, ':', r.close_reason) as strategy_close_reason_key,
        s.account_id,
        s.strategy_id,
        s.asset_group as margin_asset,
        r.close_reason,
        r.reason_order,
        s.strategy_closed as positions_closed,
        coalesce(b.closes, 0) as closes,
        {{ safe_div('coalesce(b.closes, 0)', 's.strategy_closed', 18) }} as close_rate,
        coalesce(b.wins, 0) as wins,
        coalesce(b.losses, 0) as losses,
        coalesce(b.breakevens, 0) as breakevens,
        coalesce(b.unpriced, 0) as unpriced_closes,
        {{ safe_div('b.wins', 'b.wins + b.losses', 18) }} as win_rate,
        {{ dec18('coalesce(b.realized_pnl_sum, 0)') }} as realized_pnl,
        -- 0 without closes; NULL when every close of the reason lacks a conversion price
        {{ dec18('case when b.closes is null then 0 else b.net_sum end') }} as realized_pnl_net,
        {{ safe_div('b.net_sum', 'b.closes', 18) }} as avg_realized_pnl_net,
        {{ safe_div('b.pnl_pct_sum', 'b.closes', 18) }} as avg_realized_pnl_pct,
        {{ safe_div('b.holding_sum', 'b.closes', 18) }} as avg_holding_seconds
    from strategies as s
    cross join reasons as r
    left join by_reason as b
        on s.account_id = b.account_id
        and s.strategy_id = b.strategy_id
        and s.asset_group = b.asset_group
        and r.close_reason = b.close_reason
)

select * from final
