-- exchangeInfo `symbols[]` (SPEC §3.2), one row per symbol (the latest load wins in raw).
-- The margin asset is exchangeInfo's `marginAsset`, else its `quoteAsset`.
with source as (
    select * from {{ source('raw', 'symbols') }}
),

renamed as (
    select
        symbol,
        pair,
        contract_type,
        delivery_date_ms,
        {{ ms_to_timestamp('delivery_date_ms') }} as delivery_date,
        onboard_date_ms,
        status,
        base_asset,
        quote_asset,
        coalesce(nullif(margin_asset, ''), nullif(quote_asset, '')) as margin_asset
    from source
)

select * from renamed
