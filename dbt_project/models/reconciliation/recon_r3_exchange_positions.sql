-- SPEC §5 R3 (fail), exchange truth: the latest positionRisk snapshot of each key agrees with
-- our books — `positionAmt` with our quantity (tolerance 1e-9) and, while the position is
-- open, `entryPrice` with our average entry price (tolerance 1e-6 relative: Binance shows
-- it to 8 decimals). Our side is the state after the key's last fill at or before the
-- snapshot time, which is the current episode whenever the snapshot was taken after the last
-- ingested fill. The reference per key (int_position_references): its latest snapshot, or flat
-- at the account's latest snapshot for a key with fills that the snapshots never name (v3 lists
-- only symbols with a position or open orders). `positionAmt` is compared signed (−|amt| on
-- SHORT). Our state includes the key's opening state (SPEC §4.1, its opening leg) when the
-- ingested history starts mid-position.
-- Freshness (issue 16): the comparison only means something when the reference was taken after
-- the key's last ingested fill. A key with fills whose reference predates its last fill
-- (`stale_snapshot`), or that has no reference at all because the account has no snapshot
-- (`missing_snapshot`), fails R3 with that reason instead of passing on old or absent truth.
with reference as (
    select
        account_id,
        exchange_position_key,
        snapshot_time_ms,
        signed_amount as position_amount,
        entry_price,
        source
    from {{ ref('int_position_references') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

averages as (
    select * from {{ ref('int_exchange_leg_averages') }}
),

last_fills as (
    select account_id, exchange_position_key, max(trade_time_ms) as last_fill_ms
    from {{ ref('stg_binance__trades') }}
    group by account_id, exchange_position_key
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
        -- the opening state held before the first fill, even when the snapshot predates that fill
        and (l.trade_time_ms <= r.snapshot_time_ms or l.is_opening = 1)
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
        concat(
            source, ' at ', {{ to_text(ms_to_timestamp('snapshot_time_ms')) }},
            ', our episode ', coalesce(exchange_position_id, 'none')
        ) as detail
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
        concat(
            source, ' at ', {{ to_text(ms_to_timestamp('snapshot_time_ms')) }},
            ', our episode ', coalesce(exchange_position_id, 'none')
        ) as detail
    from states
    where exchange_quantity <> 0
        and our_quantity <> 0
        and abs(our_entry_price - exchange_entry_price) * 1000000 > abs(exchange_entry_price)
),

-- expected: the last fill's time (epoch ms); observed: the reference's snapshot time (0: none at all)
freshness as (
    select
        f.account_id,
        f.exchange_position_key,
        case when r.snapshot_time_ms is null then 'missing_snapshot' else 'stale_snapshot' end as measure,
        {{ dec18('f.last_fill_ms') }} as expected,
        {{ dec18('coalesce(r.snapshot_time_ms, 0)') }} as observed,
        {{ dec18('0') }} as tolerance,
        case
            when r.snapshot_time_ms is null
                then concat(
                    'no positionRisk snapshot of the account; last ingested fill at ',
                    {{ to_text(ms_to_timestamp('f.last_fill_ms')) }}
                )
            else concat(
                'latest ', r.source, ' at ', {{ to_text(ms_to_timestamp('r.snapshot_time_ms')) }},
                ' predates the last ingested fill at ', {{ to_text(ms_to_timestamp('f.last_fill_ms')) }}
            )
        end as detail
    from last_fills as f
    left join reference as r
        on f.account_id = r.account_id and f.exchange_position_key = r.exchange_position_key
    where r.snapshot_time_ms is null or r.snapshot_time_ms < f.last_fill_ms
),

compared as (
    select * from quantities
    union all
    select * from prices
    union all
    select * from freshness
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
        detail
    from compared
)

select * from final
