-- The mark price of each (account, symbol) at its latest positionRisk snapshot: what open
-- positions are valued at, by strategy_positions and by the §5 R5 check alike (one model,
-- so the check can never value positions at a different mark than the mart).
-- Snapshots of both sides share the mark; the max makes the pick deterministic regardless.
-- Only snapshots that carry a mark count: the flat rows ingestion writes for a symbol that
-- positionRisk v3 no longer lists (e.g. a delivered quarterly) have none (NULL, not 0).
with snapshots as (
    select * from {{ ref('stg_binance__position_snapshots') }}
    where mark_price is not null
),

latest as (
    select account_id, symbol, max(snapshot_time_ms) as snapshot_time_ms
    from snapshots
    group by account_id, symbol
)

select
    s.account_id,
    s.symbol,
    max(s.snapshot_time_ms) as snapshot_time_ms,
    max(s.mark_price) as mark_price
from snapshots as s
inner join latest
    on s.account_id = latest.account_id and s.symbol = latest.symbol and s.snapshot_time_ms = latest.snapshot_time_ms
group by s.account_id, s.symbol
