-- SPEC §4.4 funding, step 1: for each FUNDING_FEE income, the strategy positions and buckets
-- holding the symbol at the funding time, with their signed open quantity. Holdings change
-- at the fill time, or at the episode end for quantity the episode-end rule moved.
-- A holding interval [from, until) covers a funding event when from <= t < until. Instead of
-- that range join (funding events x every interval of the symbol, quadratic on MariaDB), the
-- funding events of each account and symbol are numbered in time order, each interval learns
-- how many events came before its start, and an interval covers the events numbered after
-- its own count up to the next interval's count: an equality join on (account, symbol)
-- restricted to the few intervals that cover any event.
{{ config(post_hook="{{ add_index(['account_id', 'tran_id']) }}") }}

with allocations as (
    select * from {{ ref('int_fill_allocations_linked') }}
),

reallocations as (
    select * from {{ ref('int_episode_reallocations') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

funding as (
    select
        *,
        row_number() over (partition by account_id, symbol order by income_time_ms, tran_id) as funding_seq
    from {{ ref('stg_binance__income') }}
    where income_type = 'FUNDING_FEE'
),

directions as (
    select distinct
        a.strategy_position_id,
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
        d.account_id,
        d.symbol,
        d.direction,
        p.effective_time_ms as from_ms,
        sum(p.delta) over (
            partition by p.strategy_position_id order by p.effective_time_ms
            rows between unbounded preceding and current row
        ) as open_quantity
    from per_time as p
    inner join directions as d on p.strategy_position_id = d.strategy_position_id
),

timeline as (
    -- interval starts and funding events per account and symbol; at equal times a start sorts
    -- first, so the running count at a start is the number of events strictly before it
    select account_id, symbol, strategy_position_id, direction, open_quantity, from_ms as at_ms, 0 as is_funding
    from intervals
    union all
    select account_id, symbol, null, null, null, income_time_ms, 1
    from funding
),

counted as (
    select
        *,
        sum(is_funding) over (
            partition by account_id, symbol order by at_ms, is_funding
            rows between unbounded preceding and current row
        ) as events_before
    from timeline
),

spans as (
    select
        strategy_position_id,
        account_id,
        symbol,
        direction,
        open_quantity,
        events_before as after_seq,
        -- events before the next interval's start = before this interval's end (none: still open)
        lead(events_before) over (partition by strategy_position_id order by at_ms) as through_seq
    from counted
    where is_funding = 0
),

covering as (
    select *
    from spans
    where open_quantity <> 0 and (through_seq is null or through_seq > after_seq)
),

final as (
    select
        f.account_id,
        f.tran_id,
        f.symbol,
        f.income_time_ms,
        f.amount,
        c.strategy_position_id,
        c.open_quantity * c.direction as signed_quantity
    from covering as c
    inner join funding as f
        on c.account_id = f.account_id
        and c.symbol = f.symbol
        and f.funding_seq > c.after_seq
        and (c.through_seq is null or f.funding_seq <= c.through_seq)
)

select * from final
