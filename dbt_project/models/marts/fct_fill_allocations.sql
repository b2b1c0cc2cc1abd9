{{ config(
    materialized='incremental',
    unique_key='exchange_position_id',
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    pre_hook="{{ delete_changed_episodes(ref('int_fill_allocations'), [
        'allocation_id', 'exchange_position_id', 'strategy_position_id', 'role', 'allocation_type', 'quantity',
        'commission', 'binance_realized_pnl', 'effective_time_ms', 'price'
    ]) }}",
    post_hook="{{ add_index(['exchange_position_id']) }}",
) }}

-- The atomic fact of SPEC §4.2: each fill (leg) split into allocations whose quantities
-- sum to the leg's quantity, with its commission and Binance realizedPnl shares.
-- Incremental by episode: only episodes whose allocations changed are rewritten.
with allocations as (
    select * from {{ ref('int_fill_allocations') }} as src
    {{ episodes_to_build('src') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

final as (
    select
        a.allocation_id,
        a.account_id,
        a.symbol,
        a.trade_id,
        a.leg_no,
        a.order_id,
        a.exchange_position_key,
        a.exchange_position_id,
        a.strategy_position_id,
        coalesce(s.strategy_id, 'unattributed') as strategy_id,
        a.is_unattributed,
        a.role,
        a.allocation_type,
        a.quantity,
        a.price,
        a.fill_quantity,
        a.trade_time,
        a.trade_time_ms,
        a.effective_time_ms,
        a.is_over_close,
        a.is_reallocated,
        a.commission,
        a.commission_asset,
        a.binance_realized_pnl
    from allocations as a
    left join signals as s on a.strategy_position_id = s.signal_id
)

select * from final
