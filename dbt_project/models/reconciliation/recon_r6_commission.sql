-- SPEC §5 R6 (fail), fees: the commission the books allocate equals the commission of the
-- fills, within 1e-9 (shares are rounded to 18 decimals each). Commission is signed as Binance
-- sends it (a maker rebate is negative), and compared signed. Three views of it:
--   * per fill: its allocations' commission shares add up to the fill's commission;
--   * per account and commission asset (the SPEC's statement): the totals agree;
--   * per account and symbol: the strategy positions' `fees` add up to the fills' commission
--     paid in the symbol's margin asset (int_margin_assets_resolved, never the symbol's name).
-- Plus warnings (severity warn): fills paid in another asset whose conversion price (the 1m
-- kline of `{asset}{margin asset}`) is missing, so their positions' other_fees are NULL.
-- Only fills that have allocations are compared: a fill without any is R1's finding.
with fills as (
    select * from {{ ref('stg_binance__trades') }}
),

allocations as (
    select * from {{ ref('fct_fill_allocations') }}
),

positions as (
    select * from {{ ref('strategy_positions') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

conversions as (
    select * from {{ ref('int_fees_converted') }}
),

allocated_per_fill as (
    select account_id, symbol, trade_id, sum(commission) as commission
    from allocations
    group by account_id, symbol, trade_id
),

allocated_fills as (
    select
        f.account_id,
        f.symbol,
        f.trade_id,
        f.commission_asset,
        f.commission as fill_commission,
        a.commission as allocated_commission,
        case when f.commission_asset = m.margin_asset then 1 else 0 end as in_margin_asset
    from fills as f
    inner join allocated_per_fill as a
        on f.account_id = a.account_id and f.symbol = a.symbol and f.trade_id = a.trade_id
    left join margin_assets as m on f.symbol = m.symbol
),

per_fill as (
    select
        concat(account_id, ':', symbol, ':', {{ to_text('trade_id') }}) as check_key,
        'fill_commission' as measure,
        fill_commission as expected,
        allocated_commission as observed,
        concat('commission in ', commission_asset) as detail
    from allocated_fills
),

per_asset as (
    select
        concat(account_id, ':', commission_asset) as check_key,
        'commission_per_asset' as measure,
        sum(fill_commission) as expected,
        sum(allocated_commission) as observed,
        concat({{ to_text('count(*)') }}, ' fills') as detail
    from allocated_fills
    group by account_id, commission_asset
),

fills_in_margin_asset as (
    select account_id, symbol, sum(fill_commission) as commission, count(*) as fill_count
    from allocated_fills
    where in_margin_asset = 1
    group by account_id, symbol
),

position_fees as (
    select account_id, symbol, sum(fees) as fees
    from positions
    group by account_id, symbol
),

per_symbol as (
    select
        concat(q.account_id, ':', q.symbol) as check_key,
        'strategy_position_fees' as measure,
        q.commission as expected,
        coalesce(p.fees, 0) as observed,
        concat({{ to_text('q.fill_count') }}, ' fills, margin-asset commission') as detail
    from fills_in_margin_asset as q
    left join position_fees as p on q.account_id = p.account_id and q.symbol = p.symbol
    union all
    select
        concat(p.account_id, ':', p.symbol) as check_key,
        'strategy_position_fees' as measure,
        0 as expected,
        p.fees as observed,
        'fees on a symbol without margin-asset commission' as detail
    from position_fees as p
    left join fills_in_margin_asset as q on p.account_id = q.account_id and p.symbol = q.symbol
    where q.symbol is null and p.fees <> 0
),

unconverted as (
    select
        concat(account_id, ':', symbol, ':', {{ to_text('trade_id') }}) as check_key,
        'other_fee_unconverted' as measure,
        max(commission) as expected,
        max(commission) as observed,
        concat(
            'commission in ', min(commission_asset), ' has no ', min(coalesce(conversion_symbol, 'margin asset')),
            ' 1m close at ', {{ to_text(ms_to_timestamp('min(trade_time_ms)')) }}, ': other_fees NULL'
        ) as detail
    from conversions
    where other_fee is null
    group by account_id, symbol, trade_id
),

compared as (
    select *, 'fail' as severity from per_fill
    union all
    select *, 'fail' from per_asset
    union all
    select *, 'fail' from per_symbol
),

final as (
    select
        'R6' as check_id,
        'commission' as check_name,
        severity,
        check_key,
        measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('0.000000001') }} as tolerance,
        detail
    from compared
    where abs(observed - expected) > 0.000000001
    union all
    select
        'R6',
        'commission',
        'warn',
        check_key,
        measure,
        {{ dec18('expected') }},
        {{ dec18('observed') }},
        {{ dec18('0') }},
        {{ dec18('0') }},
        detail
    from unconverted
)

select * from final
