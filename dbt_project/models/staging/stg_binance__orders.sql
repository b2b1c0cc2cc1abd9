with source as (
    select * from {{ source('raw', 'futures_orders') }}
),

renamed as (
    select
        account_id,
        symbol,
        order_id,
        client_order_id,
        status,
        order_type,
        coalesce(orig_type, order_type) as orig_type,
        side,
        position_side,
        price,
        avg_price,
        orig_qty as orig_quantity,
        executed_qty as executed_quantity,
        stop_price,
        reduce_only,
        close_position,
        order_time_ms,
        {{ ms_to_timestamp('order_time_ms') }} as order_time,
        update_time_ms,
        {{ ms_to_timestamp('update_time_ms') }} as update_time
    from source
)

select * from renamed
