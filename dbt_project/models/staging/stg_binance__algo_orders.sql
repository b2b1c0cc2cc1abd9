with source as (
    select * from {{ source('raw', 'futures_algo_orders') }}
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
        trigger_price,
        actual_order_id,
        create_time_ms,
        {{ ms_to_timestamp('create_time_ms') }} as create_time,
        update_time_ms
    from source
)

select * from renamed
