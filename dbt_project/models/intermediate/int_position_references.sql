-- The exchange's word on each position key (SPEC §3.2, §4.1, §5 R3): its latest positionRisk
-- snapshot, or — for a key with fills that the account's snapshots never name (v3 lists only
-- symbols with a position or open orders) — flat at the account's latest snapshot.
-- `signed_amount` is signed like our running quantity (negative on SHORT). The opening state
-- (int_opening_states) and the R3 check read the same reference, so they can never disagree on it.
with snapshots as (
    select * from {{ ref('stg_binance__position_snapshots') }}
),

trades as (
    select * from {{ ref('stg_binance__trades') }}
),

latest_per_key as (
    select account_id, exchange_position_key, max(snapshot_time_ms) as snapshot_time_ms
    from snapshots
    group by account_id, exchange_position_key
),

latest_per_account as (
    select account_id, max(snapshot_time_ms) as snapshot_time_ms
    from snapshots
    group by account_id
),

fill_keys as (
    select distinct account_id, symbol, position_side, exchange_position_key from trades
),

final as (
    select
        s.account_id,
        s.symbol,
        s.position_side,
        s.exchange_position_key,
        s.snapshot_time_ms,
        {{ dec18('s.signed_amount') }} as signed_amount,
        {{ dec18('s.entry_price') }} as entry_price,
        'positionRisk' as source
    from snapshots as s
    inner join latest_per_key as l
        on s.account_id = l.account_id
        and s.exchange_position_key = l.exchange_position_key
        and s.snapshot_time_ms = l.snapshot_time_ms
    union all
    select
        k.account_id,
        k.symbol,
        k.position_side,
        k.exchange_position_key,
        a.snapshot_time_ms,
        {{ dec18('0') }} as signed_amount,
        {{ dec18('0') }} as entry_price,
        'absent from positionRisk' as source
    from fill_keys as k
    inner join latest_per_account as a on k.account_id = a.account_id
    left join latest_per_key as l
        on k.account_id = l.account_id and k.exchange_position_key = l.exchange_position_key
    where l.exchange_position_key is null
)

select * from final
