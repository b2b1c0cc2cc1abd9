{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_allocation_scope('exchange_position_id', 'episode') }}",
    post_hook=[
        "{{ add_index(['exchange_position_id']) }}",
        "{{ mark_allocations_done() }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}
-- the chain completes last: int_holding_intervals reads the same scope
-- depends_on: {{ ref('int_holding_intervals') }}

-- The atomic fact of SPEC §4.2: each fill (leg) split into allocations whose quantities
-- sum to the leg's quantity, with its commission and Binance realizedPnl shares.
-- Incremental by scope: the episodes of int_allocation_scope are rewritten (macros/
-- incremental_allocations.sql); its post-hook records that the chain completed.
with allocations as (
    select src.* from {{ ref('int_fill_allocations') }} as src
    {{- in_allocation_scope('src.exchange_position_id') }}
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
