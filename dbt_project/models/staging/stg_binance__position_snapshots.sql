-- positionRisk rows stamped with the time stratpos took them (SPEC §3.2). Binance sends
-- `positionAmt` signed: negative on a SHORT key in hedge mode (its documented example:
-- `"positionSide": "SHORT", "positionAmt": "-1.000"`), signed by direction on BOTH.
-- `signed_amount` normalises it — |amt| on LONG, −|amt| on SHORT, as sent on BOTH — so a
-- SHORT amount stored as a magnitude compares the same with our signed running quantity.
with source as (
    select * from {{ source('raw', 'position_snapshots') }}
),

renamed as (
    select
        account_id,
        symbol,
        position_side,
        concat(symbol, '_', position_side) as exchange_position_key,
        snapshot_time_ms,
        {{ ms_to_timestamp('snapshot_time_ms') }} as snapshot_time,
        position_amt as position_amount,
        case
            when position_side = 'LONG' then abs(position_amt)
            when position_side = 'SHORT' then -abs(position_amt)
            else position_amt
        end as signed_amount,
        entry_price,
        mark_price,
        unrealized_profit
    from source
)

select * from renamed
