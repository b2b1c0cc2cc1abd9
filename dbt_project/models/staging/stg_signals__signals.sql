with source as (
    select * from {{ source('raw', 'signals') }}
),

renamed as (
    select
        signal_id,
        account_id,
        strategy_id,
        symbol,
        action,
        case action when 'buy' then 'LONG' when 'sell' then 'SHORT' end as side,
        quantity,
        price as signal_price,
        take_profit,
        stop_loss,
        take_profit_pct,
        stop_loss_pct,
        signal_time_ms,
        {{ ms_to_timestamp('signal_time_ms') }} as signal_time
    from source
)

select * from renamed
