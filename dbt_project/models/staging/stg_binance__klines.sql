-- GET /fapi/v1/klines rows (SPEC §3.2): one row per (symbol, interval, open time). A kline
-- covers [open_time_ms, close_time_ms]; Binance's closeTime is openTime + interval − 1 ms.
with source as (
    select * from {{ source('raw', 'klines') }}
),

renamed as (
    select
        symbol,
        kline_interval,
        open_time_ms,
        {{ ms_to_timestamp('open_time_ms') }} as open_time,
        close_time_ms,
        open_price,
        high_price,
        low_price,
        close_price,
        volume
    from source
)

select * from renamed
