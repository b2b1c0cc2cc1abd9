-- SPEC §5 R7 (fail), income: per account, symbol, asset and UTC day, the fills' `realizedPnl`
-- adds up to the REALIZED_PNL income — in the symbol's margin asset (int_margin_assets_resolved:
-- USDT for BTCUSDT and BTCUSDT_261225, BTC for ETHBTC), so income booked in another asset does
-- not reconcile — and per commission asset the fills' commission, signed as Binance sends it
-- (a maker rebate is negative), equals minus the COMMISSION income (Binance books a fee as
-- negative income and a rebate as positive). Every symbol Binance lists counts, quarterlies and
-- BTC-margined contracts included. Tolerance 1e-8 per fill of the group. Both sides are raw
-- facts: this holds the exchange's trade history against its own ledger. (No FULL OUTER JOIN on
-- MySQL: a union of both sides.)
with fills as (
    select * from {{ ref('stg_binance__trades') }}
),

income as (
    select * from {{ ref('stg_binance__income') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

fill_days as (
    select
        f.*,
        coalesce(m.margin_asset, '?') as settlement_asset,
        {{ to_int('floor(f.trade_time_ms / 86400000)') }} as day_no
    from fills as f
    left join margin_assets as m on f.symbol = m.symbol
),

income_days as (
    select
        *,
        {{ to_int('floor(income_time_ms / 86400000)') }} as day_no
    from income
    where income_type in ('REALIZED_PNL', 'COMMISSION')
),

amounts as (
    -- one row per fill or income amount; fill_count tells the two sides apart
    select
        account_id, symbol, 'realized_pnl' as measure, settlement_asset as asset, day_no,
        realized_pnl as fills_amount, {{ dec18('0') }} as income_amount, 1 as fill_count
    from fill_days
    union all
    select
        account_id, symbol, 'commission' as measure, commission_asset as asset, day_no,
        commission as fills_amount, {{ dec18('0') }} as income_amount, 1 as fill_count
    from fill_days
    union all
    select
        account_id, symbol,
        case when income_type = 'REALIZED_PNL' then 'realized_pnl' else 'commission' end as measure,
        asset,
        day_no,
        {{ dec18('0') }} as fills_amount,
        case when income_type = 'REALIZED_PNL' then amount else -amount end as income_amount,
        0 as fill_count
    from income_days
),

grouped as (
    select
        account_id,
        symbol,
        measure,
        asset,
        day_no,
        sum(fills_amount) as fills_amount,
        sum(income_amount) as income_amount,
        sum(fill_count) as fill_count,
        count(*) - sum(fill_count) as income_count
    from amounts
    group by account_id, symbol, measure, asset, day_no
),

final as (
    select
        'R7' as check_id,
        'income' as check_name,
        'fail' as severity,
        concat(
            account_id, ':', symbol, ':', asset, ':',
            {{ to_text('cast(' ~ ms_to_timestamp('day_no * 86400000') ~ ' as date)') }}
        ) as check_key,
        measure,
        {{ dec18('income_amount') }} as expected,
        {{ dec18('fills_amount') }} as observed,
        {{ dec18('fills_amount - income_amount') }} as diff,
        {{ dec18('0.00000001') }} * greatest(fill_count, 1) as tolerance,
        concat({{ to_text('fill_count') }}, ' fills, ', {{ to_text('income_count') }}, ' income rows') as detail
    from grouped
    where abs(fills_amount - income_amount) > {{ dec18('0.00000001') }} * greatest(fill_count, 1)
)

select * from final
