{{ config(post_hook=[
    "{{ add_index(['strategy_position_id']) }}",
    "{{ add_index(['account_id', 'income_type', 'tran_id']) }}",
]) }}

-- SPEC §4.5: position-caused income other than REALIZED_PNL, COMMISSION and FUNDING_FEE (those
-- are the fills' own ledger lines and int_funding_allocations), shared among strategy positions
-- and buckets. One row per income record and receiving position; an income record without a
-- row here stays account-level (mart account_pnl).
--   * INSURANCE_CLEAR (the liquidation clearance fee) → the positions holding allocations of
--     the fills of the nearest preceding liquidation order(s) of the same account and symbol —
--     `autoclose-…` / `adl_autoclose…` orders (§3.3 rule 3; a delivery's settlement_autoclose is
--     no liquidation) whose first fill is the latest at or before the income time — pro rata by
--     allocated quantity (re-allocated shares of the hedge-mode episode-end rule included).
--   * COMMISSION_REBATE, API_REBATE, FEE_RETURN → pro rata to the positions' commission shares
--     (signed) of the same account, asset (the commission asset) and UTC day (fill time).
--   * DELIVERED_SETTELMENT → the positions open on the delivered contract just before the
--     delivery — before the first fill of the latest settlement_autoclose order at or before the
--     income time (else before the income time) — pro rata by |open quantity|, holdings
--     counted as int_funding_holders counts them (fills at their time, the episode-end rule's
--     moves at the episode end).
-- Shares are rounded half away from zero to 18 decimals; the last receiving position by id
-- takes the remainder, so the shares of a record add up to it exactly (as funding does).
with income as (
    select * from {{ ref('stg_binance__income') }}
),

allocations as (
    select * from {{ ref('int_fill_allocations') }}
),

linked as (
    select * from {{ ref('int_fill_allocations_linked') }}
),

reallocations as (
    select * from {{ ref('int_episode_reallocations') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

links as (
    select * from {{ ref('int_order_links_resolved') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

klines as (
    select * from {{ ref('stg_binance__klines') }}
    where kline_interval = '1m'
),

liquidation_orders as (
    select
        a.account_id,
        a.symbol,
        a.order_id,
        case when left(k.client_order_id, 21) = 'settlement_autoclose-' then 1 else 0 end as is_settlement,
        min(a.trade_time_ms) as first_fill_ms
    from allocations as a
    inner join links as k
        on a.account_id = k.account_id and a.symbol = k.symbol and a.order_id = k.order_id
    where k.link_role = 'liquidation'
    group by
        a.account_id,
        a.symbol,
        a.order_id,
        case when left(k.client_order_id, 21) = 'settlement_autoclose-' then 1 else 0 end
),

-- INSURANCE_CLEAR ------------------------------------------------------------------------
insurance_nearest as (
    select
        i.account_id,
        i.income_type,
        i.tran_id,
        i.symbol,
        max(o.first_fill_ms) as liquidation_ms
    from income as i
    inner join liquidation_orders as o
        on i.account_id = o.account_id
        and i.symbol = o.symbol
        and o.is_settlement = 0
        and o.first_fill_ms <= i.income_time_ms
    where i.income_type = 'INSURANCE_CLEAR'
    group by i.account_id, i.income_type, i.tran_id, i.symbol
),

insurance_weights as (
    select
        n.account_id,
        n.income_type,
        n.tran_id,
        a.strategy_position_id,
        min(a.symbol) as position_symbol,
        sum(a.quantity) as weight
    from insurance_nearest as n
    inner join liquidation_orders as o
        on n.account_id = o.account_id
        and n.symbol = o.symbol
        and o.is_settlement = 0
        and o.first_fill_ms = n.liquidation_ms
    inner join allocations as a
        on o.account_id = a.account_id and o.symbol = a.symbol and o.order_id = a.order_id
    group by n.account_id, n.income_type, n.tran_id, a.strategy_position_id
),

-- COMMISSION_REBATE, API_REBATE, FEE_RETURN ------------------------------------------------
rebate_days as (
    -- the (account, asset, day) of each rebate: only those days' commission is summed
    select distinct account_id, asset, {{ ms_to_day_no('income_time_ms') }} as day_no
    from income
    where income_type in ('COMMISSION_REBATE', 'API_REBATE', 'FEE_RETURN')
),

commission_days as (
    select
        a.account_id,
        a.commission_asset,
        r.day_no,
        a.strategy_position_id,
        min(a.symbol) as position_symbol,
        sum(a.commission) as commission
    from allocations as a
    inner join rebate_days as r
        on a.account_id = r.account_id
        and a.commission_asset = r.asset
        and {{ ms_to_day_no('a.trade_time_ms') }} = r.day_no
    group by a.account_id, a.commission_asset, r.day_no, a.strategy_position_id
),

rebate_weights as (
    select
        i.account_id,
        i.income_type,
        i.tran_id,
        c.strategy_position_id,
        c.position_symbol,
        c.commission as weight
    from income as i
    inner join commission_days as c
        on i.account_id = c.account_id
        and i.asset = c.commission_asset
        and {{ ms_to_day_no('i.income_time_ms') }} = c.day_no
    where i.income_type in ('COMMISSION_REBATE', 'API_REBATE', 'FEE_RETURN')
),

-- DELIVERED_SETTELMENT -----------------------------------------------------------------------
delivery_times as (
    select
        i.account_id,
        i.income_type,
        i.tran_id,
        i.symbol,
        coalesce(max(o.first_fill_ms), i.income_time_ms) as reference_ms
    from income as i
    left join liquidation_orders as o
        on i.account_id = o.account_id
        and i.symbol = o.symbol
        and o.is_settlement = 1
        and o.first_fill_ms <= i.income_time_ms
    where i.income_type = 'DELIVERED_SETTELMENT'
    group by i.account_id, i.income_type, i.tran_id, i.symbol, i.income_time_ms
),

delivered_symbols as (
    select distinct account_id, symbol from delivery_times
),

holding_deltas as (
    -- holdings of the delivered contracts only
    select
        a.account_id,
        a.symbol,
        a.strategy_position_id,
        a.trade_time_ms as at_ms,
        case when a.allocation_type = 'entry' then a.quantity else -a.quantity end as delta
    from linked as a
    inner join delivered_symbols as d on a.account_id = d.account_id and a.symbol = d.symbol
    union all
    select l.account_id, l.symbol, r.strategy_position_id, r.effective_time_ms, -r.quantity
    from reallocations as r
    inner join legs as l on r.leg_id = l.leg_id
    inner join delivered_symbols as d on l.account_id = d.account_id and l.symbol = d.symbol
    union all
    select l.account_id, l.symbol, concat('unattributed:', r.exchange_position_id), r.effective_time_ms, r.quantity
    from reallocations as r
    inner join legs as l on r.leg_id = l.leg_id
    inner join delivered_symbols as d on l.account_id = d.account_id and l.symbol = d.symbol
),

delivery_weights as (
    select
        t.account_id,
        t.income_type,
        t.tran_id,
        h.strategy_position_id,
        min(t.symbol) as position_symbol,
        abs(sum(h.delta)) as weight
    from delivery_times as t
    inner join holding_deltas as h
        on t.account_id = h.account_id
        and t.symbol = h.symbol
        and h.at_ms < t.reference_ms
    group by t.account_id, t.income_type, t.tran_id, h.strategy_position_id
),

-- shares ------------------------------------------------------------------------------------
weights as (
    select account_id, income_type, tran_id, {{ id_text('strategy_position_id') }} as strategy_position_id,
        position_symbol, weight, 'liquidation_fills' as attribution_rule
    from insurance_weights
    where weight <> 0
    union all
    select account_id, income_type, tran_id, {{ id_text('strategy_position_id') }},
        position_symbol, weight, 'commission_same_day'
    from rebate_weights
    where weight <> 0
    union all
    select account_id, income_type, tran_id, {{ id_text('strategy_position_id') }},
        position_symbol, weight, 'open_at_delivery'
    from delivery_weights
    where weight <> 0
),

ranked as (
    select
        w.*,
        i.symbol,
        i.asset,
        i.amount,
        i.income_time_ms,
        sum(w.weight) over (partition by w.account_id, w.income_type, w.tran_id) as total_weight,
        row_number() over (
            partition by w.account_id, w.income_type, w.tran_id order by w.strategy_position_id desc
        ) as rank_from_last
    from weights as w
    inner join income as i
        on w.account_id = i.account_id and w.income_type = i.income_type and w.tran_id = i.tran_id
),

based as (
    select
        *,
        case
            when total_weight = 0 then null
            else {{ exact_div(qty8('amount') ~ ' * ' ~ dec18('weight'), dec18('total_weight')) }}
        end as base_share
    from ranked
),

shared as (
    select
        *,
        {{ remainder_to_last('amount', 'base_share', 'account_id, income_type, tran_id') }} as share
    from based
    where total_weight <> 0
),

in_margin_asset as (
    -- the share in the receiving position's margin asset: as is, or converted at the close of
    -- the `{asset}{margin asset}` 1m kline containing the income time (NULL without that kline)
    select
        s.*,
        m.margin_asset,
        case
            when s.asset = m.margin_asset then s.share
            when k.close_price is not null
                then {{ converted_at_close('s.share', 'k.close_price') }}
        end as share_in_margin_asset
    from shared as s
    left join margin_assets as m on s.position_symbol = m.symbol
    left join klines as k
        on k.symbol = concat(s.asset, m.margin_asset)
        and k.open_time_ms = {{ ms_bucket('s.income_time_ms', 60000) }} * 60000
),

final as (
    select
        account_id,
        income_type,
        tran_id,
        symbol,
        asset,
        income_time_ms,
        {{ ms_to_timestamp('income_time_ms') }} as income_time,
        strategy_position_id,
        position_symbol,
        attribution_rule,
        {{ dec18('weight') }} as weight,
        {{ dec18('share') }} as amount,
        margin_asset,
        {{ dec18('share_in_margin_asset') }} as amount_in_margin_asset
    from in_margin_asset
)

select * from final
