{{ config(post_hook="{{ add_index(['account_id', 'asset', 'income_date']) }}") }}

-- SPEC §4.5: every income record of the account lands somewhere. Per account, asset and UTC
-- day: the income of each type, what the strategy books hold of it, and the account-level rest.
-- Natively per asset — nothing is converted, so the books of a BTC-margined contract count in
-- BTC and a commission paid in BNB counts in BNB.
--
-- strategy_income is computed from the books, not from the income rows:
--   + realizedPnl of every fill the books allocated, in its symbol's margin asset, on its day
--   − commission of those fills, in the commission asset (signed: a maker rebate adds)
--   + FUNDING_FEE shares of int_funding_allocations (every funding record is allocated)
--   + INSURANCE_CLEAR / rebate / FEE_RETURN / DELIVERED_SETTELMENT shares of int_income_attributed
-- account_level_income is the income no strategy position received: TRANSFER and every other
-- type §4.5 leaves at account level, §4.5 income nobody could be given (e.g. a rebate on a day
-- without commission), and fill income whose fill the books do not hold.
-- The identity (dbt test assert_account_pnl_reconciles_income): per account and asset,
-- Σ strategy_income + Σ account_level_income = Σ total_income exactly, over the fills from the
-- account's first income record on (Binance serves trades for 6 months but income for 3: older
-- fills have no income left to reconcile with; they are in `unreconciled_fill_income`).
--
-- Relation to strategy_positions (whose amounts are in the margin asset, converted where needed):
-- realized_pnl there is measured from each strategy's own entry price, Binance's realizedPnl from
-- the exchange's average entry; both agree per episode once it is closed (R4, R5), while it is
-- open averaging moves PnL between strategies and their unrealized PnL. So, over the positions
-- of margin asset A once their episodes are closed: Σ realized_pnl_net + Σ other_fees =
-- strategy_income in A, when their other-asset commission and §4.5 income counted in A here.
with income as (
    select * from {{ ref('stg_binance__income') }}
),

allocations as (
    select * from {{ ref('int_fill_allocations') }}
),

fills as (
    select * from {{ ref('stg_binance__trades') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

funding_allocations as (
    select * from {{ ref('int_funding_allocations') }}
),

income_attributed as (
    select * from {{ ref('int_income_attributed') }}
),

account_start as (
    select account_id, min(income_time_ms) as first_income_ms
    from income
    group by account_id
),

booked_fills as (
    -- fills the books hold: each has allocations of its first leg (found through the leg_id index
    -- on MySQL/MariaDB, not by joining two million-row sets)
    select
        f.account_id,
        f.trade_time_ms,
        f.realized_pnl,
        f.commission,
        f.commission_asset,
        m.margin_asset,
        case when f.trade_time_ms >= s.first_income_ms then 1 else 0 end as has_income_window
    from fills as f
    left join margin_assets as m on f.symbol = m.symbol
    left join account_start as s on f.account_id = s.account_id
    where exists (
        select 1 from allocations as a
        where a.leg_id = concat(f.account_id, ':', f.symbol, ':', {{ to_text('f.trade_id') }}, ':1')
    )
),

funding_shares as (
    select account_id, tran_id, sum(funding_amount) as amount
    from funding_allocations
    group by account_id, tran_id
),

strategy_amounts as (
    select
        account_id,
        coalesce(margin_asset, '?') as asset,
        {{ ms_to_day_no('trade_time_ms') }} as day_no,
        case when has_income_window = 1 then realized_pnl else 0 end as strategy_amount,
        case when has_income_window = 1 then 0 else realized_pnl end as unreconciled_amount
    from booked_fills
    where realized_pnl <> 0
    union all
    select
        account_id,
        commission_asset,
        {{ ms_to_day_no('trade_time_ms') }},
        case when has_income_window = 1 then -commission else 0 end,
        case when has_income_window = 1 then 0 else -commission end
    from booked_fills
    where commission <> 0
    union all
    select i.account_id, i.asset, {{ ms_to_day_no('i.income_time_ms') }}, f.amount, 0
    from income as i
    inner join funding_shares as f on i.account_id = f.account_id and i.tran_id = f.tran_id
    where i.income_type = 'FUNDING_FEE'
    union all
    select account_id, asset, {{ ms_to_day_no('income_time_ms') }}, amount, 0
    from income_attributed
),

classified as (
    -- an income record is account-level unless the books hold it: the fill of a REALIZED_PNL /
    -- COMMISSION line, a FUNDING_FEE's shares, a §4.5 record's shares (index lookups per record)
    select
        i.account_id,
        i.asset,
        i.income_type,
        i.amount,
        {{ ms_to_day_no('i.income_time_ms') }} as day_no,
        case
            when i.income_type in ('REALIZED_PNL', 'COMMISSION') and exists (
                select 1 from allocations as a
                where a.leg_id = concat(i.account_id, ':', i.symbol, ':', i.trade_id, ':1')
            ) then 0
            when i.income_type = 'FUNDING_FEE' and exists (
                select 1 from funding_allocations as f
                where f.account_id = i.account_id and f.tran_id = i.tran_id
            ) then 0
            when i.income_type in ('INSURANCE_CLEAR', 'COMMISSION_REBATE', 'API_REBATE', 'FEE_RETURN', 'DELIVERED_SETTELMENT')
                and exists (
                    select 1 from income_attributed as s
                    where s.account_id = i.account_id and s.income_type = i.income_type and s.tran_id = i.tran_id
                ) then 0
            else 1
        end as is_account_level
    from income as i
),

income_days as (
    select
        account_id,
        asset,
        day_no,
        sum(case when income_type = 'REALIZED_PNL' then amount else 0 end) as realized_pnl,
        sum(case when income_type = 'COMMISSION' then amount else 0 end) as commission,
        sum(case when income_type = 'FUNDING_FEE' then amount else 0 end) as funding_fee,
        sum(case when income_type = 'INSURANCE_CLEAR' then amount else 0 end) as insurance_clear,
        sum(case when income_type = 'COMMISSION_REBATE' then amount else 0 end) as commission_rebate,
        sum(case when income_type = 'API_REBATE' then amount else 0 end) as api_rebate,
        sum(case when income_type = 'FEE_RETURN' then amount else 0 end) as fee_return,
        sum(case when income_type = 'DELIVERED_SETTELMENT' then amount else 0 end) as delivered_settlement,
        sum(case when income_type = 'TRANSFER' then amount else 0 end) as transfer,
        sum(
            case
                when income_type in (
                    'REALIZED_PNL', 'COMMISSION', 'FUNDING_FEE', 'INSURANCE_CLEAR', 'COMMISSION_REBATE',
                    'API_REBATE', 'FEE_RETURN', 'DELIVERED_SETTELMENT', 'TRANSFER'
                ) then 0
                else amount
            end
        ) as other_types,
        sum(amount) as total_income,
        sum(case when is_account_level = 1 then amount else 0 end) as account_level_income,
        count(*) as income_count
    from classified
    group by account_id, asset, day_no
),

strategy_days as (
    select
        account_id,
        asset,
        day_no,
        sum(strategy_amount) as strategy_income,
        sum(unreconciled_amount) as unreconciled_fill_income
    from strategy_amounts
    group by account_id, asset, day_no
),

days as (
    -- one row per account, asset and day of either side: a UNION ALL grouped once rather than a
    -- grain joined back to both sides, which MariaDB evaluates once per reference (twice each)
    select
        account_id,
        asset,
        day_no,
        sum(realized_pnl) as realized_pnl,
        sum(commission) as commission,
        sum(funding_fee) as funding_fee,
        sum(insurance_clear) as insurance_clear,
        sum(commission_rebate) as commission_rebate,
        sum(api_rebate) as api_rebate,
        sum(fee_return) as fee_return,
        sum(delivered_settlement) as delivered_settlement,
        sum(transfer) as transfer,
        sum(other_types) as other_types,
        sum(total_income) as total_income,
        sum(account_level_income) as account_level_income,
        sum(income_count) as income_count,
        sum(strategy_income) as strategy_income,
        sum(unreconciled_fill_income) as unreconciled_fill_income
    from (
        select
            account_id, asset, day_no, realized_pnl, commission, funding_fee, insurance_clear, commission_rebate,
            api_rebate, fee_return, delivered_settlement, transfer, other_types, total_income, account_level_income,
            income_count, null as strategy_income, null as unreconciled_fill_income
        from income_days
        union all
        select
            account_id, asset, day_no, null, null, null, null, null, null, null, null, null, null, null, null, null,
            strategy_income, unreconciled_fill_income
        from strategy_days
    ) as sides
    group by account_id, asset, day_no
),

final as (
    select
        concat(g.account_id, ':', g.asset, ':', {{ to_text(day_no_to_date('g.day_no')) }}) as account_pnl_id,
        g.account_id,
        g.asset,
        {{ day_no_to_date('g.day_no') }} as income_date,
        {{ dec18('coalesce(g.realized_pnl, 0)') }} as realized_pnl,
        {{ dec18('coalesce(g.commission, 0)') }} as commission,
        {{ dec18('coalesce(g.funding_fee, 0)') }} as funding_fee,
        {{ dec18('coalesce(g.insurance_clear, 0)') }} as insurance_clear,
        {{ dec18('coalesce(g.commission_rebate, 0)') }} as commission_rebate,
        {{ dec18('coalesce(g.api_rebate, 0)') }} as api_rebate,
        {{ dec18('coalesce(g.fee_return, 0)') }} as fee_return,
        {{ dec18('coalesce(g.delivered_settlement, 0)') }} as delivered_settlement,
        {{ dec18('coalesce(g.transfer, 0)') }} as transfer,
        {{ dec18('coalesce(g.other_types, 0)') }} as other_income_types,
        {{ dec18('coalesce(g.total_income, 0)') }} as total_income,
        {{ dec18('coalesce(g.strategy_income, 0)') }} as strategy_income,
        {{ dec18('coalesce(g.account_level_income, 0)') }} as account_level_income,
        {{ dec18('coalesce(g.unreconciled_fill_income, 0)') }} as unreconciled_fill_income,
        {{ to_int('coalesce(g.income_count, 0)') }} as income_count
    from days as g
)

select * from final
