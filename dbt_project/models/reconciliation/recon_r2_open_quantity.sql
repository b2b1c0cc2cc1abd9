-- SPEC §5 R2 (fail), quantity: per exchange position key, the open quantities of its strategy
-- positions (buckets included) add up to the exchange's current quantity. On one-way (BOTH)
-- keys quantities are signed: a SHORT strategy position counts negative, buckets are already
-- signed. Tolerance 1e-9.
with positions as (
    select * from {{ ref('strategy_positions') }}
),

exchange as (
    select * from {{ ref('exchange_positions') }}
    where is_current
),

signed_positions as (
    select
        account_id,
        exchange_position_key,
        case
            when is_unattributed then open_quantity
            when right(exchange_position_key, 5) = '_BOTH' and side = 'SHORT' then -open_quantity
            else open_quantity
        end as signed_open_quantity
    from positions
),

by_key as (
    select
        account_id,
        exchange_position_key,
        sum(signed_open_quantity) as open_quantity,
        count(*) as position_count
    from signed_positions
    group by account_id, exchange_position_key
),

keys_vs_positions as (
    select
        e.account_id,
        e.exchange_position_key,
        e.current_quantity as expected,
        coalesce(b.open_quantity, 0) as observed,
        concat(
            'episode ', e.exchange_position_id, ', ',
            {{ to_text('coalesce(b.position_count, 0)') }}, ' strategy positions'
        ) as detail
    from exchange as e
    left join by_key as b
        on e.account_id = b.account_id and e.exchange_position_key = b.exchange_position_key
),

positions_without_key as (
    select
        b.account_id,
        b.exchange_position_key,
        0 as expected,
        b.open_quantity as observed,
        'strategy positions on a key without exchange fills' as detail
    from by_key as b
    left join exchange as e
        on b.account_id = e.account_id and b.exchange_position_key = e.exchange_position_key
    where e.exchange_position_key is null
),

compared as (
    select * from keys_vs_positions
    union all
    select * from positions_without_key
),

final as (
    select
        'R2' as check_id,
        'open_quantity' as check_name,
        'fail' as severity,
        concat(account_id, ':', exchange_position_key) as check_key,
        'open_quantity' as measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('0.000000001') }} as tolerance,
        detail
    from compared
    where abs(observed - expected) > 0.000000001
)

select * from final
