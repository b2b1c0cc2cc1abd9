-- SPEC §6: one row per opening signal (buy/sell) of a strategy — how well it was executed:
-- entry VWAP against the price the strategy saw (bps, adverse positive), signal → first fill
-- latency, and the share of the signal's quantity that filled. Signals that never filled
-- are kept (fill ratio 0) so unfilled intent shows up. slippage_cost is in the symbol's
-- margin_asset (each row one symbol; nothing here adds amounts of different assets).
with signals as (
    select * from {{ ref('stg_signals__signals') }}
    where action in ('buy', 'sell') and strategy_id <> 'unattributed'
),

positions as (
    select * from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

allocations as (
    select * from {{ ref('fct_fill_allocations') }}
    where allocation_type = 'entry' and is_unattributed = 0
),

margin_assets as (
    -- the symbol's margin asset, resolved once for every model (SPEC §3.2)
    select symbol, margin_asset from {{ ref('int_margin_assets_resolved') }}
),

entry_fills as (
    select strategy_position_id, count(distinct trade_id) as entry_fills
    from allocations
    group by strategy_position_id
),

measured as (
    select
        s.signal_id,
        s.account_id,
        s.strategy_id,
        s.symbol,
        m.margin_asset,
        s.side,
        case when s.side = 'SHORT' then -1 else 1 end as dir,
        s.signal_time,
        s.signal_time_ms,
        s.signal_price,
        s.quantity as signal_quantity,
        p.status as position_status,
        coalesce(f.entry_fills, 0) as entry_fills,
        coalesce(p.entry_quantity, 0) as entry_quantity,
        p.entry_price,
        p.entry_time,
        p.entry_time_ms
    from signals as s
    left join positions as p on s.signal_id = p.strategy_position_id
    left join entry_fills as f on s.signal_id = f.strategy_position_id
    left join margin_assets as m on s.symbol = m.symbol
),

final as (
    select
        signal_id,
        account_id,
        strategy_id,
        symbol,
        margin_asset,
        side,
        signal_time,
        signal_price,
        signal_quantity,
        position_status,
        {{ to_int('entry_fills') }} as entry_fills,
        {{ dec18('entry_quantity') }} as entry_quantity,
        entry_price,
        entry_time as first_fill_at,
        entry_time_ms - signal_time_ms as latency_ms,
        {{ safe_div('entry_quantity', 'signal_quantity', 18) }} as fill_ratio,
        {{ dec18('case when signal_quantity > entry_quantity then signal_quantity - entry_quantity else 0 end') }}
            as unfilled_quantity,
        case
            when entry_price is not null and signal_price > 0
                then dir * {{ exact_div('(entry_price - signal_price) * 10000', 'signal_price', 18) }}
        end as slippage_bps,
        case
            when entry_price is not null and signal_price is not null
                then {{ dec18('dir * cast(entry_price - signal_price as decimal(38, 18)) * ' ~ qty8('entry_quantity')) }}
        end as slippage_cost
    from measured
)

select * from final
