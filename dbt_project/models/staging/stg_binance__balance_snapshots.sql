-- GET /fapi/v3/balance rows (one per asset) stamped with the time stratpos took them
-- (SPEC §3.2). `balance` is the wallet balance: no unrealized PnL, it moves only by income.
with source as (
    select * from {{ source('raw', 'balance_snapshots') }}
),

renamed as (
    select
        account_id,
        asset,
        snapshot_time_ms,
        {{ ms_to_timestamp('snapshot_time_ms') }} as snapshot_time,
        balance as wallet_balance,
        cross_wallet_balance,
        cross_un_pnl as cross_unrealized_pnl,
        available_balance,
        max_withdraw_amount,
        update_time_ms
    from source
)

select * from renamed
