{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook=[
        "{{ save_old_holdings() }}",
        "{{ delete_allocation_scope('strategy_position_id', 'position') }}",
        "{{ delete_allocation_scope('bucket_episode_id', 'episode') }}",
    ],
    post_hook=[
        "{{ add_index(['account_id', 'symbol', 'until_ms']) }}",
        "{{ add_index(['strategy_position_id', 'from_ms']) }}",
        "{{ add_index(['bucket_episode_id']) }}",
        "{{ record_touched_holdings() }}",
    ],
) }}
-- depends_on: {{ ref('int_allocation_scope') }}

-- SPEC §4.4: what each strategy position and bucket holds of its symbol, over time: one row per
-- interval [from_ms, until_ms) of constant non-zero open quantity (unsigned; `direction` signs
-- it). Holdings change at the fill time, or at the episode end for quantity the episode-end
-- rule moved. An interval still open has until_ms = {{ holding_open_until_ms() }}, so a lookup
-- of the holders at a time t is one index range (until_ms > t) per account and symbol.
-- Incremental by scope (macros/incremental_allocations.sql): the scope's positions and the
-- buckets of its episodes are rewritten; the post-hook records which time ranges of which
-- symbol changed, for int_funding_holders (macros/incremental_funding.sql).
with allocations as (
    select a.* from {{ ref('int_fill_allocations_linked') }} as a
    {{- in_allocation_scope('a.exchange_position_id') }}
),

reallocations as (
    select r.* from {{ ref('int_episode_reallocations') }} as r
    {{- in_allocation_scope('r.exchange_position_id') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

directions as (
    select distinct
        a.strategy_position_id,
        case when a.strategy_position_id like 'unattributed:%' then a.exchange_position_id end as bucket_episode_id,
        a.account_id,
        a.symbol,
        case
            when a.strategy_position_id like 'unattributed:%' then a.episode_dir
            when s.side = 'SHORT' then -1
            else 1
        end as direction
    from allocations as a
    left join signals as s on a.strategy_position_id = s.signal_id
),

deltas as (
    select
        strategy_position_id,
        trade_time_ms as effective_time_ms,
        case when allocation_type = 'entry' then quantity else -quantity end as delta
    from allocations
    union all
    select strategy_position_id, effective_time_ms, -quantity as delta
    from reallocations
    union all
    select concat('unattributed:', exchange_position_id), effective_time_ms, quantity as delta
    from reallocations
),

per_time as (
    select strategy_position_id, effective_time_ms, sum(delta) as delta
    from deltas
    group by strategy_position_id, effective_time_ms
),

intervals as (
    select
        p.strategy_position_id,
        d.bucket_episode_id,
        d.account_id,
        d.symbol,
        d.direction,
        p.effective_time_ms as from_ms,
        coalesce(
            lead(p.effective_time_ms) over (partition by p.strategy_position_id order by p.effective_time_ms),
            {{ holding_open_until_ms() }}
        ) as until_ms,
        sum(p.delta) over (
            partition by p.strategy_position_id order by p.effective_time_ms
            rows between unbounded preceding and current row
        ) as open_quantity
    from per_time as p
    inner join directions as d on p.strategy_position_id = d.strategy_position_id
),

final as (
    select
        {{ id_text('strategy_position_id') }} as strategy_position_id,
        {{ id_text('bucket_episode_id') }} as bucket_episode_id,
        account_id,
        symbol,
        {{ to_int('direction') }} as direction,
        {{ to_int('from_ms') }} as from_ms,
        {{ to_int('until_ms') }} as until_ms,
        {{ qty8('open_quantity') }} as open_quantity
    from intervals
    where open_quantity <> 0
)

select * from final
