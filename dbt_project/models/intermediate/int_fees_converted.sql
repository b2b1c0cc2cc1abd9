{{ config(post_hook=[
    "{{ add_index(['allocation_id']) }}",
    "{{ add_index(['strategy_position_id']) }}",
]) }}

-- SPEC §4.3 fees: each allocation's pro-rata share of its fill's commission (signed: a maker
-- rebate is negative), in the asset Binance charged it in, and in the symbol's margin asset.
-- Commission in the margin asset counts as is (`fee`). Commission in another asset (BNB, …) is
-- converted at the close of the 1-minute kline of `{commission asset}{margin asset}` that
-- contains the fill time — the minute starting at floor(time / 60000)·60000 — rounded half
-- away from zero to 18 decimals per allocation (`other_fee`); NULL when that kline was not
-- loaded, or the symbol's margin asset is unknown (R8 warns about every such fill).
with allocations as (
    select * from {{ ref('int_fill_allocations') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

klines as (
    select * from {{ ref('stg_binance__klines') }}
    where kline_interval = '1m'
),

charged as (
    select
        a.allocation_id,
        a.account_id,
        a.symbol,
        a.trade_id,
        a.leg_no,
        a.strategy_position_id,
        a.trade_time_ms,
        a.commission_asset,
        a.commission,
        m.margin_asset,
        case when a.commission_asset = m.margin_asset then 1 else 0 end as in_margin_asset,
        concat(a.commission_asset, coalesce(m.margin_asset, '')) as conversion_symbol,
        {{ ms_bucket('a.trade_time_ms', 60000) }} * 60000 as minute_open_ms
    from allocations as a
    left join margin_assets as m on a.symbol = m.symbol
    where a.commission_asset is not null
),

final as (
    select
        c.allocation_id,
        c.account_id,
        c.symbol,
        c.trade_id,
        c.leg_no,
        c.strategy_position_id,
        c.trade_time_ms,
        c.commission_asset,
        {{ dec18('c.commission') }} as commission,
        c.margin_asset,
        c.in_margin_asset,
        case when c.in_margin_asset = 1 then null else c.conversion_symbol end as conversion_symbol,
        case when c.in_margin_asset = 1 then null else k.close_price end as conversion_price,
        case when c.in_margin_asset = 1 then {{ dec18('c.commission') }} else {{ dec18('0') }} end as fee,
        case
            when c.in_margin_asset = 1 then {{ dec18('0') }}
            when c.margin_asset is null or k.close_price is null then null
            else {{ dec18(converted_at_close('c.commission', 'k.close_price')) }}
        end as other_fee
    from charged as c
    left join klines as k
        on c.in_margin_asset = 0
        and k.symbol = c.conversion_symbol
        and k.open_time_ms = c.minute_open_ms
)

select * from final
