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

-- SPEC §4.2, hedge mode, episode end: when an episode returns to flat while positions
-- that entered in it still hold r_i, the bucket's reducing allocations of that episode
-- (the pool, total P) are shared out: pool allocation j gives round(q_j·r_i/P, 8) to
-- position i (positions by id); the last pool allocation takes the remainder of r_i,
-- and when Σr = P the last position takes whatever the others left, so the bucket
-- keeps q_j·(P − Σr)/P and every total stays exact. One row per (pool allocation,
-- position) share; the bucket keeps `kept_quantity` of each pool allocation.
-- Incremental by scope: the episodes of int_allocation_scope (macros/incremental_allocations.sql).
with allocations as (
    select a.* from {{ ref('int_fill_allocations_linked') }} as a
    {{- in_allocation_scope('a.exchange_position_id') }}
),

episode_ends as (
    select distinct
        exchange_position_id,
        trade_time_ms as end_time_ms,
        trade_id as end_trade_id,
        leg_no as end_leg_no
    from allocations
    where closes_episode = 1 and position_mode = 'hedge'
),

holders as (
    select
        a.strategy_position_id,
        e.exchange_position_id,
        e.end_time_ms,
        sum(case when a.allocation_type = 'entry' then a.quantity else -a.quantity end) as remaining
    from allocations as a
    inner join episode_ends as e on a.position_episode_id = e.exchange_position_id
    where a.strategy_position_id not like 'unattributed:%'
        and (
            a.trade_time_ms < e.end_time_ms
            or (a.trade_time_ms = e.end_time_ms and (a.trade_id < e.end_trade_id
                or (a.trade_id = e.end_trade_id and a.leg_no <= e.end_leg_no)))
        )
    group by a.strategy_position_id, e.exchange_position_id, e.end_time_ms
),

open_holders as (
    select
        *,
        row_number() over (partition by exchange_position_id order by strategy_position_id) as holder_no,
        count(*) over (partition by exchange_position_id) as holder_count,
        sum(remaining) over (partition by exchange_position_id) as remaining_total
    from holders
    where remaining > 0
),

pool as (
    select
        a.exchange_position_id,
        a.leg_id,
        a.quantity as pool_quantity,
        a.role,
        row_number() over (
            partition by a.exchange_position_id order by a.trade_time_ms, a.trade_id, a.leg_no
        ) as pool_no,
        count(*) over (partition by a.exchange_position_id) as pool_count,
        sum(a.quantity) over (partition by a.exchange_position_id) as pool_total,
        min(case when a.role = 'liquidation' then 1 else 0 end) over (
            partition by a.exchange_position_id
        ) as all_liquidations
    from allocations as a
    inner join episode_ends as e on a.exchange_position_id = e.exchange_position_id
    where a.strategy_position_id = concat('unattributed:', a.exchange_position_id)
        and a.allocation_type = 'exit'
),

pairs as (
    select
        h.strategy_position_id,
        h.exchange_position_id,
        h.end_time_ms,
        h.remaining,
        h.holder_no,
        h.holder_count,
        case when h.remaining_total = p.pool_total then 1 else 0 end as exact_fit,
        p.leg_id,
        p.pool_quantity,
        p.pool_no,
        p.pool_count,
        p.pool_total,
        p.all_liquidations,
        cast(round({{ exact_div(qty8('p.pool_quantity') ~ ' * ' ~ qty8('h.remaining'), qty8('p.pool_total')) }}, 8) as decimal(38, 18))
            as base_share
    from open_holders as h
    inner join pool as p on h.exchange_position_id = p.exchange_position_id
),

row_shares as (
    -- every position but an exact-fit last one: the last pool allocation takes the remainder of r_i
    select
        *,
        case
            when pool_no = pool_count then
                remaining - coalesce(sum(case when pool_no < pool_count then base_share end) over (
                    partition by exchange_position_id, strategy_position_id
                ), {{ dec18('0') }})
            else base_share
        end as row_share
    from pairs
),

shares as (
    select
        *,
        case
            when exact_fit = 1 and holder_no = holder_count then
                pool_quantity - coalesce(sum(case when holder_no < holder_count then row_share end) over (
                    partition by exchange_position_id, leg_id
                ), {{ dec18('0') }})
            else row_share
        end as share_quantity
    from row_shares
),

final as (
    select
        strategy_position_id,
        exchange_position_id,
        leg_id,
        case when all_liquidations = 1 then 'liquidation' else 'external' end as role,
        {{ dec18('share_quantity') }} as quantity,
        end_time_ms as effective_time_ms
    from shares
    where share_quantity <> 0
)

select * from final
