-- Explicit order → signal links (SPEC §3.3 rule 1). `link_ref` is the raw key: `order:{SYMBOL}:{id}`
-- when the record names the order's symbol, `order:{id}#{signal_id}` when it does not (then the order
-- id is matched on the linked signal's symbol: order ids are per symbol, §3.2), `client:{clientOrderId}`.
with source as (
    select * from {{ source('raw', 'order_links') }}
),

renamed as (
    select
        account_id,
        link_ref,
        order_id,
        client_order_id,
        {{ optional_column(source('raw', 'order_links'), 'symbol') }} as symbol,
        signal_id,
        role
    from source
)

select * from renamed
