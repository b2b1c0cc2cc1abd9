{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_allocation_scope('exchange_position_id', 'episode') }}",
    post_hook=[
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
        "{{ add_index(['account_id', 'exchange_position_key', 'episode_no']) }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.2 before the episode-end rule: every leg split into allocations.
--   * a linked entry → its strategy position;
--   * a linked take_profit/stop_loss/close → its position, capped in (time, id) order so
--     its exits never exceed its entries; in hedge mode an exit outside the episode the
--     position entered in is wholly an over-close;
--   * liquidations, unlinked legs and over-close excess → the episode's bucket
--     `unattributed:{exchange_position_id}` (increasing legs add, reducing legs subtract);
--   * the opening leg of a key whose history starts mid-position (§4.1) → the bucket of
--     episode 1 with role `opening`: |qty0| at avg0, an entry.
-- A signal whose entry fills all predate the history has no entry leg, hence no episode: each
-- linked exit of it is ineligible (int_exit_allocations), wholly an over-close in the bucket (§4.1, §4.2).
-- The cap (a running clamp) is int_exit_allocations; a position's episode is int_position_episodes.
-- Incremental by scope: the episodes of int_allocation_scope (macros/incremental_allocations.sql).
with linked_legs as (
    select l.* from {{ ref('int_legs_linked') }} as l
    {{- in_allocation_scope('l.exchange_position_id') }}
),

entry_legs as (
    select * from linked_legs where link_role = 'entry'
),

position_episode as (
    select * from {{ ref('int_position_episodes') }}
),

exit_legs as (
    -- the linked exits with their capped allocation (int_exit_allocations)
    select e.* from {{ ref('int_exit_allocations') }} as e
    {{- in_allocation_scope('e.exchange_position_id') }}
),

strategy_entries as (
    select
        leg_id, strategy_position_id, 'entry' as role, 'entry' as allocation_type,
        leg_quantity as quantity, 0 as is_over_close
    from entry_legs
),

strategy_exits as (
    select
        e.leg_id, e.strategy_position_id, e.link_role as role, 'exit' as allocation_type,
        e.allocated_quantity as quantity, 0 as is_over_close
    from exit_legs as e
    where e.allocated_quantity > 0
),

over_closes as (
    select
        l.leg_id,
        l.leg_quantity - coalesce(l.allocated_quantity, {{ dec18('0') }}) as quantity
    from exit_legs as l
    where l.leg_quantity - coalesce(l.allocated_quantity, {{ dec18('0') }}) > 0
),

bucket_rows as (
    select
        l.leg_id,
        concat('unattributed:', l.exchange_position_id) as strategy_position_id,
        l.link_role as role,
        case when l.is_increasing = 1 then 'entry' else 'exit' end as allocation_type,
        l.leg_quantity as quantity,
        0 as is_over_close
    from linked_legs as l
    where l.link_role in ('liquidation', 'unlinked', 'opening')
    union all
    select
        o.leg_id,
        concat('unattributed:', l.exchange_position_id) as strategy_position_id,
        'over_close' as role,
        case when l.is_increasing = 1 then 'entry' else 'exit' end as allocation_type,
        o.quantity,
        1 as is_over_close
    from over_closes as o
    inner join linked_legs as l on o.leg_id = l.leg_id
),

allocations as (
    select * from strategy_entries
    union all
    select * from strategy_exits
    union all
    select * from bucket_rows
),

final as (
    select
        a.leg_id,
        a.strategy_position_id,
        a.role,
        a.allocation_type,
        {{ dec18('a.quantity') }} as quantity,
        a.is_over_close,
        l.account_id,
        l.symbol,
        l.trade_id,
        l.leg_no,
        l.exchange_position_key,
        l.exchange_position_id,
        l.episode_no,
        l.episode_dir,
        l.position_mode,
        l.price,
        l.fill_quantity,
        l.fill_commission,
        l.commission_asset,
        l.fill_realized_pnl,
        l.trade_time_ms,
        l.trade_time,
        l.closes_episode,
        coalesce(p.position_episode_id, l.exchange_position_id) as position_episode_id
    from allocations as a
    inner join linked_legs as l on a.leg_id = l.leg_id
    left join position_episode as p on a.strategy_position_id = p.strategy_position_id
)

select * from final
