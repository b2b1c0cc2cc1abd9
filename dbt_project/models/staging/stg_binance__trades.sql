with source as (
    select * from {{ source('raw', 'futures_trades') }}
),

renamed as (
    select
        account_id,
        symbol,
        trade_id,
        order_id,
        side,
        position_side,
        concat(symbol, '_', position_side) as exchange_position_key,
        price,
        qty as quantity,
        case when side = 'BUY' then qty else -qty end as signed_quantity,
        quote_qty as quote_quantity,
        realized_pnl,
        -- signed as Binance sends it: negative is a maker rebate (SPEC §3.2)
        commission,
        commission_asset,
        -- the settlement asset Binance names on the fill (userTrades' `marginAsset`), if it does
        nullif(margin_asset, '') as margin_asset,
        trade_time_ms,
        {{ ms_to_timestamp('trade_time_ms') }} as trade_time,
        maker as is_maker
    from source
)

select * from renamed
