{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ add_affected_funding() }}",
    post_hook=[
        "{{ add_index(['account_id', 'tran_id']) }}",
        "{{ renew_funding_seen() }}",
    ],
) }}

-- SPEC §4.4 funding, step 1: for each FUNDING_FEE income, the strategy positions and buckets
-- holding the symbol at the funding time (an interval of int_holding_intervals with
-- from_ms <= t < until_ms), with their signed open quantity.
-- Incremental by funding record (macros/incremental_funding.sql): an hourly run looks up only
-- the records whose holders can have changed, each in the intervals' (account, symbol, until_ms)
-- index. A full build numbers the records of each account and symbol in time order instead,
-- and each interval learns how many records came before its start and before its end: it
-- covers the records numbered in between, an equality join on (account, symbol) instead of
-- a range join of every record with every interval (quadratic on MariaDB).
with intervals as (
    select * from {{ ref('int_holding_intervals') }}
),

{%- if is_incremental() %}

funding as (
    select e.account_id, e.tran_id, e.symbol, e.income_time_ms, e.amount
    from {{ side_table('events_now') }} as e
    inner join (select distinct account_id, tran_id from {{ side_table('affected') }}) as a
        on e.account_id = a.account_id and e.tran_id = a.tran_id
),

final as (
    select
        f.account_id,
        f.tran_id,
        f.symbol,
        f.income_time_ms,
        f.amount,
        h.strategy_position_id,
        h.open_quantity * h.direction as signed_quantity
    from funding as f
    {{ straight_join() }} intervals as h
        on h.account_id = f.account_id
        and h.symbol = f.symbol
        and h.until_ms > f.income_time_ms
        and h.from_ms <= f.income_time_ms
)

{%- else %}

funding as (
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        amount,
        row_number() over (partition by account_id, symbol order by income_time_ms, tran_id) as funding_seq
    from {{ ref('stg_binance__income') }}
    where income_type = 'FUNDING_FEE'
),

timeline as (
    -- interval starts and ends and funding events per account and symbol; at equal times a
    -- start or end sorts first, so the running count there is the number of events strictly
    -- before it; an interval's end sorts before the same position's next start
    select
        account_id, symbol, strategy_position_id, direction, open_quantity,
        from_ms as at_ms, 0 as is_funding, 0 as is_end
    from intervals
    union all
    select account_id, symbol, strategy_position_id, direction, open_quantity, until_ms, 0, 1
    from intervals
    where until_ms < {{ holding_open_until_ms() }}
    union all
    select account_id, symbol, null, null, null, income_time_ms, 1, 0
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
        is_end,
        events_before as after_seq,
        -- at a start, the count at its end (none: still open)
        lead(events_before) over (partition by strategy_position_id order by at_ms asc, is_end desc) as through_seq
    from counted
    where is_funding = 0
),

covering as (
    select *
    from spans
    where is_end = 0 and (through_seq is null or through_seq > after_seq)
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

{%- endif %}

select * from final
