-- SPEC §3.2: the margin (settlement) asset of every symbol the books meet — the asset its
-- realizedPnl, commission in that asset, funding and income are booked in. Taken from
-- exchangeInfo (`marginAsset`, else `quoteAsset`), never from a pattern on the symbol's name
-- (`ETHBTC` settles in BTC, `BTCUSDT_261225` in USDT). A symbol exchangeInfo no longer lists
-- (delisted, or not loaded yet) falls back to what Binance itself sent for it: the fills'
-- `marginAsset`, else the asset of its REALIZED_PNL income. A symbol none of them names has no
-- row here, and its margin-asset amounts stay NULL rather than guessed.
with symbols as (
    select * from {{ ref('stg_binance__symbols') }}
),

trades as (
    select * from {{ ref('stg_binance__trades') }}
),

income as (
    select * from {{ ref('stg_binance__income') }}
),

from_exchange_info as (
    select symbol, margin_asset
    from symbols
    where margin_asset is not null
),

from_trades as (
    select symbol, min(margin_asset) as margin_asset
    from trades
    where margin_asset is not null
    group by symbol
),

from_income as (
    select symbol, min(asset) as margin_asset
    from income
    where income_type = 'REALIZED_PNL' and symbol is not null and symbol <> ''
    group by symbol
),

candidates as (
    select symbol, margin_asset, 1 as priority, 'exchangeInfo' as margin_asset_source from from_exchange_info
    union all
    select symbol, margin_asset, 2, 'userTrades' from from_trades
    union all
    select symbol, margin_asset, 3, 'income' from from_income
),

ranked as (
    select
        *,
        row_number() over (partition by symbol order by priority) as rn
    from candidates
),

final as (
    select
        {{ id_text('symbol') }} as symbol,
        margin_asset,
        margin_asset_source
    from ranked
    where rn = 1
)

select * from final
