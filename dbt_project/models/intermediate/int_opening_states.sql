{{ config(post_hook="{{ add_index(['account_id', 'exchange_position_key']) }}") }}

-- SPEC §4.1, opening state: what each key held before its first ingested fill (Binance serves
-- 6 months of trades, so a real account's history starts mid-position). One row per key with
-- a non-zero opening quantity.
--
--   qty0 = the reference positionRisk amount (int_position_references, signed: −|amt| on SHORT)
--          − the net signed quantity of the key's fills up to that snapshot. A qty0 of the wrong
--          sign for the key (a LONG key short) is no opening state: R3 reports the mismatch.
--   avg0, anchored on Binance's own numbers, in this order:
--     * 'reducing_fill': the opening episode's first reducing fill k (the first fill against
--       the direction of qty0; every fill before it increases, so it lies in the opening
--       episode) when it is at or before the snapshot. Binance booked it as
--       realizedPnl = (p − avg)·q·dir, so avg_k = p − realizedPnl/(q·dir), with q the quantity
--       it reduced (on BOTH, the closing leg of a fill that crosses zero). Walked back over the
--       increasing fills i before it in one step: |Q_k|·avg_k = |qty0|·avg0 + Σ q_i·p_i;
--     * 'snapshot': otherwise the snapshot's entryPrice, walked back the same way over all the
--       key's fills up to the snapshot (all of them increase the opening position).
--   Rounding, exactly (the ground truth must do the same): avg_k = round((p·q − realizedPnl·dir)/q, 18)
--   and avg0 = round((|Q|·avg_k − Σ q_i·p_i)/|qty0|, 18), half away from zero (exact_div).
--
-- How exact that is. Binance rounds realizedPnl to 8 decimals, so avg_k is Binance's average
-- only to within 0.5e-8/q: relative to the price that is 0.5e-8/(q·p), below 1e-9 for any fill
-- above 5 units of notional, far inside R3's 1e-6 relative price tolerance. Walking forward from
-- avg0 reproduces avg_k (to 18 decimals), so fill k's computed PnL is its realizedPnl; what the
-- position left after fill k carries is a cost-basis error of at most
-- (|Q_k| − q)·0.5e-8/q, which later reducing fills realize (at most all of it). R4 allows
-- 1e-8 per fill for Binance's per-fill rounding; `realized_pnl_tolerance` is this second,
-- bounded rounding, which R4 adds for the opening episode. For a 'snapshot' anchor it is
-- |amount|·half a unit of the last decimal entryPrice was given with (Binance shows it to a few
-- decimals); it only matters for reducing fills after the snapshot (the next run's newer
-- snapshot then anchors on them).
--
-- The opening allocation (int_exchange_legs: a synthetic leg, no trade) is at the time of the
-- key's first ingested fill, or at the snapshot's time for a key open with no fill at all.
with refs as (
    select * from {{ ref('int_position_references') }}
),

trades as (
    select * from {{ ref('stg_binance__trades') }}
),

until_snapshot as (
    select r.account_id, r.exchange_position_key, sum(t.signed_quantity) as net_quantity
    from refs as r
    -- on the symbol and side too (the key is their concat()): the fills' primary key prefix
    -- (account, symbol) then reads one symbol's fills per key, not the account's
    inner join trades as t
        on r.account_id = t.account_id
        and r.symbol = t.symbol
        and r.position_side = t.position_side
        and r.exchange_position_key = t.exchange_position_key
        and t.trade_time_ms <= r.snapshot_time_ms
    group by r.account_id, r.exchange_position_key
),

states as (
    select
        r.*,
        r.signed_amount - coalesce(u.net_quantity, 0) as qty0
    from refs as r
    left join until_snapshot as u
        on r.account_id = u.account_id and r.exchange_position_key = u.exchange_position_key
),

openings as (
    select
        *,
        case when qty0 > 0 then 1 else -1 end as dir
    from states
    where (position_side = 'LONG' and qty0 > 0)
        or (position_side = 'SHORT' and qty0 < 0)
        or (position_side = 'BOTH' and qty0 <> 0)
),

key_fills as (
    select
        t.account_id,
        t.exchange_position_key,
        t.trade_id,
        t.trade_time_ms,
        t.price,
        t.quantity,
        t.realized_pnl,
        o.snapshot_time_ms,
        case when t.signed_quantity * o.dir < 0 then 1 else 0 end as is_reducing,
        row_number() over (
            partition by t.account_id, t.exchange_position_key order by t.trade_time_ms, t.trade_id
        ) as fill_no
    from openings as o
    inner join trades as t
        on o.account_id = t.account_id
        and o.symbol = t.symbol
        and o.position_side = t.position_side
        and o.exchange_position_key = t.exchange_position_key
),

first_reducing as (
    select account_id, exchange_position_key, min(fill_no) as anchor_no
    from key_fills
    where is_reducing = 1
    group by account_id, exchange_position_key
),

fill_sums as (
    select
        f.account_id,
        f.exchange_position_key,
        min(f.trade_time_ms) as first_fill_ms,
        -- the increasing fills before the first reducing one, and those up to the snapshot
        sum(case when f.fill_no < coalesce(r.anchor_no, f.fill_no + 1) then f.quantity else 0 end) as qty_before_anchor,
        sum(case when f.fill_no < coalesce(r.anchor_no, f.fill_no + 1) then {{ qty8('f.quantity') }} * {{ qty8('f.price') }} else 0 end)
            as notional_before_anchor,
        sum(case when f.trade_time_ms <= f.snapshot_time_ms then {{ qty8('f.quantity') }} * {{ qty8('f.price') }} else 0 end)
            as notional_until_snapshot,
        max(case when f.fill_no = r.anchor_no and f.trade_time_ms <= f.snapshot_time_ms then 1 else 0 end) as has_anchor_fill,
        max(case when f.fill_no = r.anchor_no then f.trade_id end) as anchor_trade_id,
        max(case when f.fill_no = r.anchor_no then f.price end) as anchor_price,
        max(case when f.fill_no = r.anchor_no then f.quantity end) as anchor_quantity,
        max(case when f.fill_no = r.anchor_no then f.realized_pnl end) as anchor_realized_pnl
    from key_fills as f
    left join first_reducing as r
        on f.account_id = r.account_id and f.exchange_position_key = r.exchange_position_key
    group by f.account_id, f.exchange_position_key
),

anchored as (
    select
        o.account_id,
        o.symbol,
        o.position_side,
        o.exchange_position_key,
        o.snapshot_time_ms,
        o.signed_amount,
        o.entry_price,
        o.qty0,
        o.dir,
        coalesce(f.first_fill_ms, o.snapshot_time_ms) as opening_time_ms,
        case when f.has_anchor_fill = 1 then 'reducing_fill' else 'snapshot' end as avg_source,
        case when f.has_anchor_fill = 1 then f.anchor_trade_id end as anchor_trade_id,
        abs(o.qty0) + coalesce(f.qty_before_anchor, 0) as qty_at_anchor,
        -- the quantity fill k reduced: all of it, or on BOTH the part that closed the position
        least(f.anchor_quantity, abs(o.qty0) + coalesce(f.qty_before_anchor, 0)) as anchor_reduced,
        f.anchor_price,
        f.anchor_realized_pnl,
        f.has_anchor_fill,
        coalesce(f.notional_before_anchor, 0) as notional_before_anchor,
        coalesce(f.notional_until_snapshot, 0) as notional_until_snapshot
    from openings as o
    left join fill_sums as f
        on o.account_id = f.account_id and o.exchange_position_key = f.exchange_position_key
),

anchor_prices as (
    select
        *,
        case
            when has_anchor_fill = 1 then {{ exact_div(
                qty8('anchor_price') ~ ' * ' ~ qty8('anchor_reduced') ~ ' - ' ~ dec18('anchor_realized_pnl') ~ ' * dir',
                qty8('anchor_reduced')
            ) }}
            else entry_price
        end as anchor_avg
    from anchored
),

final as (
    select
        account_id,
        symbol,
        position_side,
        exchange_position_key,
        {{ dec18('qty0') }} as opening_quantity,
        case
            when has_anchor_fill = 1 then {{ exact_div(
                qty8('qty_at_anchor') ~ ' * anchor_avg - notional_before_anchor', qty8('abs(qty0)')
            ) }}
            else {{ exact_div(qty8('abs(signed_amount)') ~ ' * anchor_avg - notional_until_snapshot', qty8('abs(qty0)')) }}
        end as opening_price,
        opening_time_ms,
        {{ ms_to_timestamp('opening_time_ms') }} as opening_time,
        avg_source,
        anchor_trade_id,
        {{ dec18('anchor_avg') }} as anchor_avg_price,
        snapshot_time_ms,
        {{ dec18('signed_amount') }} as snapshot_amount,
        {{ dec18('entry_price') }} as snapshot_entry_price,
        case
            when has_anchor_fill = 1 then {{ exact_div(
                qty8('qty_at_anchor - anchor_reduced') ~ ' * cast(0.000000005 as decimal(10, 9))', qty8('anchor_reduced')
            ) }}
            else {{ dec18(qty8('abs(signed_amount)') ~ ' * ' ~ half_last_decimal('entry_price')) }}
        end as realized_pnl_tolerance
    from anchor_prices
)

select * from final
