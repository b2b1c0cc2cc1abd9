-- Conditional orders of Binance's algo service (SPEC §3.2), one row per (account, symbol, algoId):
-- the version with the latest updateTime (raw keeps one, this makes it explicit). `algoStatus`
-- runs NEW → TRIGGERING → TRIGGERED → FINISHED or ends CANCELED / REJECTED / EXPIRED; only those
-- four are final (a TRIGGERED order is still live: FINISHED follows it). `actual_order_id` is the
-- regular order the service placed on the same symbol, NULL until it triggered.
with source as (
    select * from {{ source('raw', 'futures_algo_orders') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by account_id, symbol, algo_id order by update_time_ms desc
        ) as version_rank
    from source
),

renamed as (
    select
        account_id,
        algo_id,
        symbol,
        client_algo_id,
        order_type,
        side,
        position_side,
        quantity,
        algo_status,
        case when algo_status in ('FINISHED', 'CANCELED', 'REJECTED', 'EXPIRED') then 1 else 0 end as is_final,
        trigger_price,
        actual_order_id,
        create_time_ms,
        {{ ms_to_timestamp('create_time_ms') }} as create_time,
        update_time_ms
    from ranked
    where version_rank = 1
)

select * from renamed
