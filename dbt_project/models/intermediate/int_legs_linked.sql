-- Each exchange leg with the §3.3 link of its order and the account's position mode.
-- Links to signals that are unknown or not opening signals (buy/sell) count as unlinked.
-- The opening leg of a key whose history starts mid-position (§4.1) has no order: role
-- `opening`, to the bucket. Orders are matched on (account, symbol, orderId): ids are per symbol.
{{ config(post_hook=[
    "{{ add_index(['leg_id']) }}",
    "{{ add_index(['strategy_position_id']) }}",
]) }}

with legs as (
    select * from {{ ref('int_exchange_legs') }}
),

links as (
    select * from {{ ref('int_order_links_resolved') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

accounts as (
    select * from {{ ref('stg_binance__accounts') }}
),

final as (
    select
        l.*,
        coalesce(a.position_mode, case when l.position_side = 'BOTH' then 'one_way' else 'hedge' end) as position_mode,
        case when s.signal_id is not null then k.strategy_position_id end as strategy_position_id,
        case
            when l.is_opening = 1 then 'opening'
            when k.link_role in ('entry', 'take_profit', 'stop_loss', 'close') and s.signal_id is null then 'unlinked'
            else coalesce(k.link_role, 'unlinked')
        end as link_role
    from legs as l
    left join links as k
        on l.account_id = k.account_id and l.symbol = k.symbol and l.order_id = k.order_id
    left join signals as s
        on k.strategy_position_id = s.signal_id and s.action in ('buy', 'sell')
    left join accounts as a
        on l.account_id = a.account_id
)

select * from final
