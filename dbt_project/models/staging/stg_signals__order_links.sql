with source as (
    select * from {{ source('raw', 'order_links') }}
),

renamed as (
    select
        account_id,
        link_ref,
        order_id,
        client_order_id,
        signal_id,
        role
    from source
)

select * from renamed
