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
        entry_price,
        mark_price,
        unrealized_profit
    from source
)

select * from renamed
