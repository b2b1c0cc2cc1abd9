{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_allocation_scope('exchange_position_id', 'episode') }}",
    post_hook=[
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.2 complete: linked and bucket allocations with the hedge-mode episode-end rule
-- applied — pool allocations keep only what was not re-allocated, re-allocated shares
-- become exits of the positions they closed. Commission and Binance's realizedPnl are
-- shared pro rata by quantity (18 decimals). `effective_time_ms` is when the quantity
-- changed hands: the fill time, or the episode end for re-allocated shares.
-- Incremental by scope: the episodes of int_allocation_scope (macros/incremental_allocations.sql).
with allocations as (
    select a.* from {{ ref('int_fill_allocations_linked') }} as a
    {{- in_allocation_scope('a.exchange_position_id') }}
),

reallocations as (
    select r.* from {{ ref('int_episode_reallocations') }} as r
    {{- in_allocation_scope('r.exchange_position_id') }}
),

moved as (
    select leg_id, sum(quantity) as moved_quantity
    from reallocations
    group by leg_id
),

kept as (
    select
        a.leg_id,
        a.strategy_position_id,
        a.role,
        a.allocation_type,
        case
            when m.leg_id is not null and a.strategy_position_id = concat('unattributed:', a.exchange_position_id)
                and a.allocation_type = 'exit'
                then a.quantity - m.moved_quantity
            else a.quantity
        end as quantity,
        a.is_over_close,
        0 as is_reallocated,
        a.trade_time_ms as effective_time_ms
    from allocations as a
    left join moved as m on a.leg_id = m.leg_id
),

shared as (
    select
        r.leg_id,
        r.strategy_position_id,
        r.role,
        'exit' as allocation_type,
        r.quantity,
        0 as is_over_close,
        1 as is_reallocated,
        r.effective_time_ms
    from reallocations as r
),

combined as (
    select * from kept where quantity <> 0
    union all
    select * from shared
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

final as (
    select
        concat(c.leg_id, ':', c.strategy_position_id, ':', c.allocation_type, ':', {{ to_text('c.is_reallocated') }})
            as allocation_id,
        c.leg_id,
        l.account_id,
        l.symbol,
        l.trade_id,
        l.leg_no,
        l.order_id,
        l.exchange_position_key,
        l.exchange_position_id,
        l.episode_dir,
        c.strategy_position_id,
        case when c.strategy_position_id like 'unattributed:%' then 1 else 0 end as is_unattributed,
        c.role,
        c.allocation_type,
        c.quantity,
        l.price,
        l.fill_quantity,
        l.trade_time_ms,
        l.trade_time,
        c.effective_time_ms,
        c.is_over_close,
        c.is_reallocated,
        l.commission_asset,
        case
            when c.quantity = l.fill_quantity then l.fill_commission
            else {{ exact_div(qty8('l.fill_commission') ~ ' * ' ~ qty8('c.quantity'), qty8('l.fill_quantity')) }}
        end as commission,
        case
            when c.quantity = l.fill_quantity then l.fill_realized_pnl
            else {{ exact_div(qty8('l.fill_realized_pnl') ~ ' * ' ~ qty8('c.quantity'), qty8('l.fill_quantity')) }}
        end as binance_realized_pnl
    from combined as c
    inner join legs as l on c.leg_id = l.leg_id
)

select * from final
