-- SPEC §3.3: every exchange order (from allOrders or only seen in fills) tied to
-- (strategy_position_id, role), first match wins:
--   1. explicit link by order id, by client order id, or by the client id of the algo
--      order that triggered it;  2. the {signal_id}-{code} convention on clientOrderId
--      or clientAlgoId, for known signals only;  3. liquidation ids;  4. unlinked.
-- Order ids and algo ids are sequences per symbol (§3.2): the same number on two symbols is
-- two orders. So an algo order names the order it placed by (account, symbol, actualOrderId),
-- and an explicit link by order id matches on (account, symbol, order id) — the symbol the record
-- names, else its signal's (int_order_links_explicit keys every record by what it matches).
--
-- Incremental by order: each run resolves again only the orders whose ids, algo order, explicit
-- links or named signals changed (macros/incremental_links.sql says why that is exact), listed in
-- `__pending` by the pre-hook. Rows carry `built_ms`: int_legs_linked re-reads the newer ones.
-- depends_on: {{ ref('int_exchange_legs') }}
{{ config(
    materialized='incremental',
    unique_key=['account_id', 'symbol', 'order_id'],
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ add_pending_links() }}",
    post_hook=[
        "{{ add_index(['account_id', 'symbol', 'order_id']) }}",
        "{{ add_index(['account_id', 'client_order_id']) }}",
        "{{ add_index(['account_id', 'client_algo_id']) }}",
        "{{ add_index(['account_id', 'order_signal_id']) }}",
        "{{ add_index(['account_id', 'algo_signal_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ add_index(['built_ms']) }}",
        "{{ renew_links_seen() }}",
    ],
) }}

with orders as (
    select * from {{ ref('stg_binance__orders') }}
),

trades as (
    select * from {{ ref('stg_binance__trades') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

links as (
    select * from {{ ref('int_order_links_explicit') }}
),

{%- if is_incremental() %}

order_ids as (
    -- the pending orders (macros/incremental_links.sql) that are orders: in allOrders or the fills
    select distinct p.account_id, p.symbol, p.order_id
    from {{ side_table('pending') }} as p
    where exists (
        select 1 from orders as o
        where o.account_id = p.account_id and o.symbol = p.symbol and o.order_id = p.order_id
    )
        or exists (
            select 1 from trades as t
            where t.account_id = p.account_id and t.symbol = p.symbol and t.order_id = p.order_id
        )
),
{%- else %}

order_ids as (
    select account_id, symbol, order_id from orders
    union
    select distinct account_id, symbol, order_id from trades
),
{%- endif %}

algo_orders as (
    -- whatever its status (TRIGGERED, then FINISHED), an algo order names the same actualOrderId.
    -- Read from raw, which keeps one version per algo order (stg_binance__algo_orders ranks them):
    -- MariaDB reaches it through its (account, symbol, actual_order_id) index, where the staging
    -- view's window is evaluated per order (253 s for 8,956 orders after 20 days)
    select distinct a.account_id, a.symbol, a.actual_order_id, a.client_algo_id
    from {{ source('raw', 'futures_algo_orders') }} as a
    {%- if is_incremental() %}
    inner join order_ids as ids
        on a.account_id = ids.account_id and a.symbol = ids.symbol and a.actual_order_id = ids.order_id
    {%- else %}
    where a.actual_order_id is not null
    {%- endif %}
),

with_client_ids as (
    select
        ids.account_id,
        ids.symbol,
        ids.order_id,
        o.client_order_id,
        a.client_algo_id
    from order_ids as ids
    left join orders as o
        on ids.account_id = o.account_id and ids.symbol = o.symbol and ids.order_id = o.order_id
    left join algo_orders as a
        on ids.account_id = a.account_id and ids.symbol = a.symbol and ids.order_id = a.actual_order_id
),

parsed as (
    -- {signal_id}-{code}: the code is the two characters after the last '-'
    select
        *,
        case
            when substr(client_order_id, length(client_order_id) - 2, 1) = '-'
                and right(client_order_id, 2) in ('en', 'tp', 'sl', 'cl')
                then left(client_order_id, length(client_order_id) - 3)
        end as order_signal_id,
        right(client_order_id, 2) as order_code,
        case
            when substr(client_algo_id, length(client_algo_id) - 2, 1) = '-'
                and right(client_algo_id, 2) in ('en', 'tp', 'sl', 'cl')
                then left(client_algo_id, length(client_algo_id) - 3)
        end as algo_signal_id,
        right(client_algo_id, 2) as algo_code
    from with_client_ids
),

candidates as (
    -- one row per order: every join below is on a key (no join between two large derived tables)
    select
        p.account_id,
        p.symbol,
        p.order_id,
        p.client_order_id,
        p.client_algo_id,
        p.order_signal_id,
        p.algo_signal_id,
        by_order.signal_id as explicit_order_signal,
        by_order.role as explicit_order_role,
        by_client.signal_id as explicit_client_signal,
        by_client.role as explicit_client_role,
        by_algo.signal_id as explicit_algo_signal,
        by_algo.role as explicit_algo_role,
        order_signal.signal_id as convention_signal,
        p.order_code,
        algo_signal.signal_id as convention_algo_signal,
        p.algo_code
    from parsed as p
    -- int_order_links_explicit is unique and indexed on (account_id, match_ref), match_ref being
    -- 'order:{SYMBOL}:{id}' or 'client:{id}': each join finds at most one row through the index
    left join links as by_order
        on p.account_id = by_order.account_id
        and by_order.match_ref = concat('order:', p.symbol, ':', {{ to_text('p.order_id') }})
    left join links as by_client
        on p.account_id = by_client.account_id and by_client.match_ref = concat('client:', p.client_order_id)
    left join links as by_algo
        on p.account_id = by_algo.account_id and by_algo.match_ref = concat('client:', p.client_algo_id)
    left join signals as order_signal
        on p.order_signal_id = order_signal.signal_id and p.account_id = order_signal.account_id
    left join signals as algo_signal
        on p.algo_signal_id = algo_signal.signal_id and p.account_id = algo_signal.account_id
),

resolved as (
    select
        account_id,
        symbol,
        order_id,
        client_order_id,
        client_algo_id,
        order_signal_id,
        algo_signal_id,
        case
            when explicit_order_signal is not null then 'explicit_order_id'
            when explicit_client_signal is not null then 'explicit_client_id'
            when explicit_algo_signal is not null then 'explicit_algo_id'
            when convention_signal is not null then 'convention'
            when convention_algo_signal is not null then 'convention_algo'
            when left(client_order_id, 10) = 'autoclose-'
                or left(client_order_id, 13) = 'adl_autoclose'
                or left(client_order_id, 21) = 'settlement_autoclose-'
                then 'liquidation_id'
            else 'none'
        end as link_rule,
        coalesce(explicit_order_signal, explicit_client_signal, explicit_algo_signal, convention_signal, convention_algo_signal)
            as strategy_position_id,
        case
            when explicit_order_signal is not null then explicit_order_role
            when explicit_client_signal is not null then explicit_client_role
            when explicit_algo_signal is not null then explicit_algo_role
            when convention_signal is not null then
                case order_code when 'en' then 'entry' when 'tp' then 'take_profit' when 'sl' then 'stop_loss' else 'close' end
            when convention_algo_signal is not null then
                case algo_code when 'en' then 'entry' when 'tp' then 'take_profit' when 'sl' then 'stop_loss' else 'close' end
        end as linked_role
    from candidates
),

final as (
    select
        account_id,
        symbol,
        order_id,
        client_order_id,
        client_algo_id,
        link_rule,
        strategy_position_id,
        case
            when link_rule = 'liquidation_id' then 'liquidation'
            when link_rule = 'none' then 'unlinked'
            else linked_role
        end as link_role,
        -- the signal ids the convention reads from the client ids: a signal arriving later finds them
        order_signal_id,
        algo_signal_id,
        {{ build_stamp_ms() }} as built_ms
    from resolved
)

select * from final
