with source as (
    select * from {{ source('raw', 'income') }}
),

renamed as (
    select
        account_id,
        income_type,
        tran_id,
        symbol,
        income as amount,
        asset,
        info,
        trade_id,
        income_time_ms,
        {{ ms_to_timestamp('income_time_ms') }} as income_time
    from source
)

select * from renamed
