{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_consumer_scope('exchange_position_id', 'episode') }}",
    post_hook=[
        "{{ add_index(['contribution_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
        "{{ mark_scope_consumed() }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.4: one row per strategy position and episode it entered: how much it put into
-- the shared exchange position, in which order, and what it earned by its own entry
-- price versus what Binance's average-entry accounting booked for its exits.
-- Incremental by the allocation chain's scope (macros/incremental_allocations.sql): a row reads
-- its position's allocations, the legs of its episode and the columns of strategy_positions
-- that follow from those allocations and the signal alone, all inside the position's component.
with allocations as (
    select a.* from {{ ref('int_fill_allocations') }} as a
    {{- in_consumer_scope('a.exchange_position_id') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

positions as (
    select * from {{ ref('strategy_positions') }}
),

entry_allocations as (
    -- only the columns used: MariaDB sorts this in a temporary table for each window
    select
        strategy_position_id,
        exchange_position_id,
        exchange_position_key,
        quantity,
        price,
        trade_time_ms,
        leg_id,
        trade_id,
        leg_no,
        row_number() over (
            partition by strategy_position_id, exchange_position_id order by trade_time_ms, trade_id, leg_no
        ) as from_first,
        row_number() over (
            partition by strategy_position_id, exchange_position_id order by trade_time_ms desc, trade_id desc, leg_no desc
        ) as from_last
    from allocations
    where allocation_type = 'entry' and is_unattributed = 0
),

entries as (
    select
        strategy_position_id,
        exchange_position_id,
        min(exchange_position_key) as exchange_position_key,
        sum(quantity) as contribution_q,
        sum({{ qty8('quantity') }} * {{ qty8('price') }}) as contribution_pq,
        min(trade_time_ms) as contribution_time_ms,
        max(case when from_first = 1 then leg_id end) as first_leg_id,
        max(case when from_last = 1 then leg_id end) as last_leg_id,
        max(case when from_first = 1 then trade_id end) as first_trade_id,
        max(case when from_first = 1 then leg_no end) as first_leg_no
    from entry_allocations
    group by strategy_position_id, exchange_position_id
),

exits as (
    select
        strategy_position_id,
        sum(binance_realized_pnl) as binance_realized_pnl
    from allocations
    where allocation_type = 'exit' and is_unattributed = 0
    group by strategy_position_id
),

final as (
    select
        concat(e.strategy_position_id, ':', e.exchange_position_id) as contribution_id,
        e.strategy_position_id,
        e.exchange_position_id,
        e.exchange_position_key,
        p.strategy_id,
        p.symbol,
        p.side as position_side,
        {{ dec18('e.contribution_q') }} as contribution_quantity,
        {{ exact_div('e.contribution_pq', 'e.contribution_q') }} as contribution_entry_price,
        {{ ms_to_timestamp('e.contribution_time_ms') }} as contribution_time,
        {{ to_int("row_number() over (
            partition by e.exchange_position_id
            order by e.contribution_time_ms, e.first_trade_id, e.first_leg_no, e.strategy_position_id
        )") }} as position_sequence,
        first_leg.leg_qty_before as exchange_quantity_before,
        last_leg.leg_qty_after as exchange_quantity_after,
        case when p.status = 'closed' then 'closed' else 'active' end as status,
        p.close_reason,
        p.exit_time,
        p.exit_price,
        case
            when p.entry_quantity = e.contribution_q then p.realized_pnl
            else {{ exact_div(qty8('p.realized_pnl') ~ ' * ' ~ qty8('e.contribution_q'), qty8('p.entry_quantity')) }}
        end as contribution_pnl,
        p.realized_pnl_pct as contribution_pnl_pct,
        case
            when p.entry_quantity = e.contribution_q then coalesce(x.binance_realized_pnl, {{ dec18('0') }})
            else {{ exact_div(qty8('coalesce(x.binance_realized_pnl, 0)') ~ ' * ' ~ qty8('e.contribution_q'), qty8('p.entry_quantity')) }}
        end as exchange_realized_pnl
    from entries as e
    inner join positions as p on e.strategy_position_id = p.strategy_position_id
    inner join legs as first_leg on e.first_leg_id = first_leg.leg_id
    inner join legs as last_leg on e.last_leg_id = last_leg.leg_id
    left join exits as x on e.strategy_position_id = x.strategy_position_id
)

select * from final
