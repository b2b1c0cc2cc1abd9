-- SPEC §4.3 / R2 on our own books: per key, the signed open quantities of strategy
-- positions and buckets equal the key's quantity after its last leg.
with positions as (
    select
        exchange_position_key,
        account_id,
        case
            when is_unattributed and right(exchange_position_key, 5) = '_BOTH' then open_quantity
            when side = 'SHORT' and right(exchange_position_key, 5) = '_BOTH' then -open_quantity
            else open_quantity
        end as signed_open
    from {{ ref('strategy_positions') }}
),

by_key as (
    select account_id, exchange_position_key, sum(signed_open) as positions_open
    from positions
    group by account_id, exchange_position_key
),

exchange as (
    select account_id, exchange_position_key, current_quantity
    from {{ ref('exchange_positions') }}
    where is_current
)

select e.account_id, e.exchange_position_key, e.current_quantity, b.positions_open
from exchange as e
left join by_key as b on e.account_id = b.account_id and e.exchange_position_key = b.exchange_position_key
where coalesce(b.positions_open, 0) <> e.current_quantity
