-- SPEC §5 R3 (fail), exchange truth: the latest positionRisk snapshot of each key agrees with
-- our books — `positionAmt` with our quantity (tolerance 1e-9) and, while the position is
-- open, `entryPrice` with our average entry price (tolerance 1e-6 relative: Binance shows
-- it to 8 decimals). Our side is the state after the key's last fill at or before the
-- snapshot time, which is the current episode whenever the snapshot was taken after the last
-- ingested fill. positionRisk reports flat keys as zero rows; a key with fills that the
-- account's snapshots never mention counts as flat at the account's latest snapshot.
with snapshots as (
    select * from {{ ref('stg_binance__position_snapshots') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

averages as (
    select * from {{ ref('int_exchange_leg_averages') }}
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

latest_snapshots as (
    select s.*
    from snapshots as s
    inner join latest_per_key as l
        on s.account_id = l.account_id
        and s.exchange_position_key = l.exchange_position_key
        and s.snapshot_time_ms = l.snapshot_time_ms
),

fill_keys as (
    select distinct account_id, exchange_position_key from legs
),

reference as (
    -- the exchange's word per key: its latest snapshot, or flat when the account's snapshots never named it
    select
        account_id,
        exchange_position_key,
        snapshot_time_ms,
        position_amount,
        entry_price,
        'positionRisk' as source
    from latest_snapshots
    union all
    select
        k.account_id,
        k.exchange_position_key,
        a.snapshot_time_ms,
        {{ dec18('0') }} as position_amount,
        {{ dec18('0') }} as entry_price,
        'absent from positionRisk' as source
    from fill_keys as k
    inner join latest_per_account as a on k.account_id = a.account_id
    left join latest_per_key as l
        on k.account_id = l.account_id and k.exchange_position_key = l.exchange_position_key
    where l.exchange_position_key is null
),

legs_until_snapshot as (
    select
        r.account_id,
        r.exchange_position_key,
        l.exchange_position_id,
        l.leg_qty_after,
        a.avg_price_after,
        row_number() over (
            partition by r.account_id, r.exchange_position_key
            order by l.trade_time_ms desc, l.trade_id desc, l.leg_no desc
        ) as from_last
    from reference as r
    inner join legs as l
        on r.account_id = l.account_id
        and r.exchange_position_key = l.exchange_position_key
        and l.trade_time_ms <= r.snapshot_time_ms
    inner join averages as a on l.leg_id = a.leg_id
),

ours as (
    select * from legs_until_snapshot where from_last = 1
),

states as (
    select
        r.account_id,
        r.exchange_position_key,
        r.snapshot_time_ms,
        r.source,
        r.position_amount as exchange_quantity,
        r.entry_price as exchange_entry_price,
        coalesce(o.leg_qty_after, 0) as our_quantity,
        o.avg_price_after as our_entry_price,
        o.exchange_position_id
    from reference as r
    left join ours as o
        on r.account_id = o.account_id and r.exchange_position_key = o.exchange_position_key
),

quantities as (
    select
        account_id,
        exchange_position_key,
        'position_amount' as measure,
        exchange_quantity as expected,
        our_quantity as observed,
        {{ dec18('0.000000001') }} as tolerance,
        snapshot_time_ms,
        source,
        exchange_position_id
    from states
    where abs(our_quantity - exchange_quantity) > 0.000000001
),

prices as (
    select
        account_id,
        exchange_position_key,
        'entry_price' as measure,
        exchange_entry_price as expected,
        our_entry_price as observed,
        {{ qty8('abs(exchange_entry_price)') }} * cast(0.000001 as decimal(7, 6)) as tolerance,
        snapshot_time_ms,
        source,
        exchange_position_id
    from states
    where exchange_quantity <> 0
        and our_quantity <> 0
        and abs(our_entry_price - exchange_entry_price) * 1000000 > abs(exchange_entry_price)
),

compared as (
    select * from quantities
    union all
    select * from prices
),

final as (
    select
        'R3' as check_id,
        'exchange_positions' as check_name,
        'fail' as severity,
        concat(account_id, ':', exchange_position_key) as check_key,
        measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('tolerance') }} as tolerance,
        concat(
            source, ' at ', {{ to_text(ms_to_timestamp('snapshot_time_ms')) }},
            ', our episode ', coalesce(exchange_position_id, 'none')
        ) as detail
    from compared
)

select * from final
