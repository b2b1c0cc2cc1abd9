{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_allocation_scope('exchange_position_id', 'episode') }}",
    post_hook=[
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.2: every linked take_profit / stop_loss / close leg with the quantity allocated to
-- its strategy position (NULL when the leg is ineligible: the position has no entry leg, or in
-- hedge mode the leg is outside the episode the position entered in). The cap is a running
-- clamp in (time, id) order: allocated_k = X_k + min(0, min_{j<=k}(E_j - X_j)), with E the
-- entries and X the exit demand so far. What exceeds the allocation is an over-close
-- (int_fill_allocations_linked). Its own table because that model reads it twice, and MariaDB
-- evaluates a CTE (here the whole running clamp) once per reference. Incremental by scope: the
-- episodes of int_allocation_scope, which hold every leg of their positions.
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
    select
        l.*,
        p.position_episode_id,
        case
            when p.position_episode_id is null then 0
            when l.position_mode = 'hedge' and l.exchange_position_id <> p.position_episode_id then 0
            else 1
        end as is_eligible
    from linked_legs as l
    left join position_episode as p
        on l.strategy_position_id = p.strategy_position_id
    where l.link_role in ('take_profit', 'stop_loss', 'close')
),

position_events as (
    select strategy_position_id, leg_id, trade_time_ms, trade_id, leg_no, leg_quantity, 1 as is_entry
    from entry_legs
    union all
    select strategy_position_id, leg_id, trade_time_ms, trade_id, leg_no, leg_quantity, 0 as is_entry
    from exit_legs
    where is_eligible = 1
),

running as (
    select
        *,
        sum(case when is_entry = 1 then leg_quantity else 0 end) over w as entries_so_far,
        sum(case when is_entry = 0 then leg_quantity else 0 end) over w as exits_so_far
    from position_events
    window w as (
        partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
        rows between unbounded preceding and current row
    )
),

clamped as (
    select
        strategy_position_id,
        leg_id,
        trade_time_ms,
        trade_id,
        leg_no,
        leg_quantity,
        exits_so_far + least(
            {{ dec18('0') }},
            min(entries_so_far - exits_so_far) over (
                partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
                rows between unbounded preceding and current row
            )
        ) as allocated_so_far
    from running
    where is_entry = 0
),

exit_allocated as (
    select
        leg_id,
        strategy_position_id,
        allocated_so_far - coalesce(
            lag(allocated_so_far) over (partition by strategy_position_id order by trade_time_ms, trade_id, leg_no),
            {{ dec18('0') }}
        ) as allocated_quantity
    from clamped
),

final as (
    select
        l.leg_id,
        l.exchange_position_id,
        l.strategy_position_id,
        l.link_role,
        l.leg_quantity,
        e.allocated_quantity
    from exit_legs as l
    left join exit_allocated as e on l.leg_id = e.leg_id
)

select * from final
