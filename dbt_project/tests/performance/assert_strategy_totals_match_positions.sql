-- SPEC §6: for every strategy, strategy_performance's position counts and money totals equal
-- the sums over its strategy_positions, and its daily PnL rows add up to the same totals.
-- Returns the strategies where any of them differ.
with positions as (
    select
        account_id,
        strategy_id,
        count(*) as positions_total,
        count(case when status = 'closed' then 1 end) as positions_closed,
        sum(realized_pnl) as realized_pnl,
        sum(fees) as fees,
        sum(funding_fees) as funding_fees,
        sum(realized_pnl_net) as realized_pnl_net
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
    group by account_id, strategy_id
),

daily as (
    select
        account_id,
        strategy_id,
        sum(realized_pnl) as realized_pnl,
        sum(fees) as fees,
        sum(funding_fees) as funding_fees,
        sum(net_pnl) as net_pnl,
        sum(positions_opened) as positions_opened,
        sum(positions_closed) as positions_closed
    from {{ ref('strategy_daily_pnl') }}
    group by account_id, strategy_id
)

select p.account_id, p.strategy_id
from positions as p
left join {{ ref('strategy_performance') }} as s on p.account_id = s.account_id and p.strategy_id = s.strategy_id
left join daily as d on p.account_id = d.account_id and p.strategy_id = d.strategy_id
where s.strategy_id is null
    or d.strategy_id is null
    or s.positions_total <> p.positions_total
    or s.positions_closed <> p.positions_closed
    or s.realized_pnl <> p.realized_pnl
    or s.fees <> p.fees
    or s.funding_fees <> p.funding_fees
    or s.realized_pnl_net <> p.realized_pnl_net
    or d.realized_pnl <> p.realized_pnl
    or d.fees <> p.fees
    or d.funding_fees <> p.funding_fees
    or d.net_pnl <> p.realized_pnl_net
    or d.positions_opened <> p.positions_total
    or d.positions_closed <> p.positions_closed
