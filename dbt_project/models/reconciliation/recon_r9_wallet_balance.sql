-- SPEC §5 R9 (fail), wallet: per account and asset, the change of the wallet `balance`
-- (GET /fapi/v3/balance; no unrealized PnL in it) between two consecutive balance snapshots
-- equals Σ income of that asset with a time in (previous snapshot, this snapshot] — every
-- income type, transfers included: the wallet moves by nothing else. Tolerance 1e-8
-- (Binance's income amounts have 8 decimals). The first snapshot of an asset has nothing to
-- compare with. Income is summed by a running total over income and snapshots in time order
-- (income first at equal times, so an income at a snapshot's time belongs to that snapshot),
-- not by a range join per snapshot pair.
with snapshots as (
    select * from {{ ref('stg_binance__balance_snapshots') }}
),

income as (
    select * from {{ ref('stg_binance__income') }}
),

snapshot_assets as (
    select distinct account_id, asset from snapshots
),

events as (
    select
        i.account_id,
        i.asset,
        i.income_time_ms as at_ms,
        0 as is_snapshot,
        i.amount,
        {{ dec18('null') }} as wallet_balance
    from income as i
    inner join snapshot_assets as a on i.account_id = a.account_id and i.asset = a.asset
    union all
    select
        account_id,
        asset,
        snapshot_time_ms,
        1,
        {{ dec18('0') }},
        wallet_balance
    from snapshots
),

running as (
    select
        *,
        sum(amount) over (
            partition by account_id, asset order by at_ms, is_snapshot
            rows between unbounded preceding and current row
        ) as income_so_far,
        count(*) over (
            partition by account_id, asset order by at_ms, is_snapshot
            rows between unbounded preceding and current row
        ) - sum(is_snapshot) over (
            partition by account_id, asset order by at_ms, is_snapshot
            rows between unbounded preceding and current row
        ) as income_rows_so_far
    from events
),

consecutive as (
    select
        account_id,
        asset,
        at_ms as snapshot_time_ms,
        wallet_balance,
        income_so_far,
        income_rows_so_far,
        lag(at_ms) over (partition by account_id, asset order by at_ms) as previous_time_ms,
        lag(wallet_balance) over (partition by account_id, asset order by at_ms) as previous_balance,
        lag(income_so_far) over (partition by account_id, asset order by at_ms) as previous_income_so_far,
        lag(income_rows_so_far) over (partition by account_id, asset order by at_ms) as previous_rows_so_far
    from running
    where is_snapshot = 1
),

compared as (
    select
        account_id,
        asset,
        snapshot_time_ms,
        previous_time_ms,
        wallet_balance - previous_balance as balance_change,
        income_so_far - previous_income_so_far as income_total,
        income_rows_so_far - previous_rows_so_far as income_rows
    from consecutive
    where previous_time_ms is not null
),

final as (
    select
        'R9' as check_id,
        'wallet_balance' as check_name,
        'fail' as severity,
        concat(account_id, ':', asset, ':', {{ to_text('snapshot_time_ms') }}) as check_key,
        'balance_change' as measure,
        {{ dec18('balance_change') }} as expected,
        {{ dec18('income_total') }} as observed,
        {{ dec18('income_total - balance_change') }} as diff,
        {{ dec18('0.00000001') }} as tolerance,
        concat(
            {{ to_text('income_rows') }}, ' income rows between the snapshots at ',
            {{ to_text('previous_time_ms') }}, ' and ', {{ to_text('snapshot_time_ms') }}, ' (epoch ms)'
        ) as detail
    from compared
    where abs(income_total - balance_change) > 0.00000001
)

select * from final
