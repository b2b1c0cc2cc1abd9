-- SPEC §6: for every strategy and margin asset, strategy_performance's position counts and
-- money totals equal the sums over its strategy_positions in that asset, and its daily PnL
-- rows add up to the same totals. Returns the (account, strategy, asset) where any differ.
-- NULL sums (no position of the kind) compare as unknown, not as a difference.
with positions as (
    select
        account_id,
        strategy_id,
        coalesce(margin_asset, concat('unknown:', symbol)) as margin_asset,
        count(*) as positions_total,
        count(case when status = 'closed' then 1 end) as positions_closed,
        sum(realized_pnl) as realized_pnl,
        sum(fees) as fees,
        sum(other_fees) as other_fees,
        sum(funding_fees) as funding_fees,
        sum(other_income) as other_income,
        sum(realized_pnl_net) as realized_pnl_net,
        count(case when realized_pnl_net is null then 1 end) as unpriced
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
    group by account_id, strategy_id, coalesce(margin_asset, concat('unknown:', symbol))
),

daily as (
    select
        account_id,
        strategy_id,
        margin_asset,
        sum(realized_pnl) as realized_pnl,
        sum(fees) as fees,
        sum(other_fees) as other_fees,
        sum(funding_fees) as funding_fees,
        sum(other_income) as other_income,
        sum(net_pnl) as net_pnl,
        sum(positions_opened) as positions_opened,
        sum(positions_closed) as positions_closed
    from {{ ref('strategy_daily_pnl') }}
    group by account_id, strategy_id, margin_asset
)

select p.account_id, p.strategy_id, p.margin_asset
from positions as p
left join {{ ref('strategy_performance') }} as s
    on p.account_id = s.account_id and p.strategy_id = s.strategy_id and p.margin_asset = s.margin_asset
left join daily as d
    on p.account_id = d.account_id and p.strategy_id = d.strategy_id and p.margin_asset = d.margin_asset
where s.strategy_id is null
    or d.strategy_id is null
    or s.positions_total <> p.positions_total
    or s.positions_closed <> p.positions_closed
    or s.realized_pnl <> p.realized_pnl
    or s.fees <> p.fees
    or s.other_fees <> p.other_fees
    or s.funding_fees <> p.funding_fees
    or s.other_income <> p.other_income
    or s.realized_pnl_net <> p.realized_pnl_net
    or d.realized_pnl <> p.realized_pnl
    or d.fees <> p.fees
    or s.unpriced_positions <> p.unpriced
    or d.funding_fees <> p.funding_fees
    -- a position without a conversion price has NULL other_fees / other_income / net, while its
    -- days count the priced part: the day sums match only when everything was priced
    or (p.unpriced = 0 and (
        d.other_fees <> p.other_fees or d.other_income <> p.other_income or d.net_pnl <> p.realized_pnl_net
    ))
    or d.positions_opened <> p.positions_total
    or d.positions_closed <> p.positions_closed
