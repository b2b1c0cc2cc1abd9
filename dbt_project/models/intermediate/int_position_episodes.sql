{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_allocation_scope('strategy_position_id', 'position') }}",
    post_hook=[
        "{{ add_index(['strategy_position_id']) }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.2: the episode each strategy position belongs to — the episode of its first entry
-- leg. Its own table because int_exit_allocations and int_fill_allocations_linked both read
-- it, and MariaDB evaluates a CTE once per reference. Incremental by scope: the positions of
-- int_allocation_scope (macros/incremental_allocations.sql).
with entry_legs as (
    select l.* from {{ ref('int_legs_linked') }} as l
    {{- in_allocation_scope('l.strategy_position_id', 'position') }}
    where l.link_role = 'entry'
),

final as (
    -- a strategy position belongs to the episode of its first entry leg
    select strategy_position_id, exchange_position_id as position_episode_id
    from (
        select
            strategy_position_id,
            exchange_position_id,
            row_number() over (
                partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
            ) as rn
        from entry_legs
    ) as ranked
    where rn = 1
)

select * from final
