-- Each exchange leg with the §3.3 link of its order and the account's position mode.
-- Links to signals that are unknown or not opening signals (buy/sell) count as unlinked.
-- The opening leg of a key whose history starts mid-position (§4.1) has no order: role
-- `opening`, to the bucket. Orders are matched on (account, symbol, orderId): ids are per symbol.
--
-- Incremental by leg (macros/incremental_links.sql): a run rebuilds, per key, the episodes
-- int_exchange_legs rebuilt since this table's newest row (`__plan`, as the average walk does),
-- the legs of the orders int_order_links_resolved resolved again since then, and every leg of an
-- account whose position mode changed since the last run's `__accounts_now` (`__legs` lists them all).
{{ config(
    materialized='incremental',
    unique_key='leg_id',
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook=[
        "{{ take_accounts_now() }}",
        "drop table if exists {{ side_table('plan') }}",
        "drop table if exists {{ side_table('legs') }}",
        "{{ create_side_table('plan', legs_linked_plan_sql()) }}",
        "{{ create_side_table('legs', legs_linked_legs_sql()) }}",
        "{{ delete_planned_suffix() }}",
    ],
    post_hook=[
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ add_index(['account_id', 'exchange_position_key', 'episode_no']) }}",
        "{{ add_index(['account_id', 'symbol', 'order_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
        "{{ add_index(['built_ms']) }}",
        "{{ renew_accounts_seen() }}",
    ],
) }}

with legs as (
    select src.* from {{ ref('int_exchange_legs') }} as src
    {%- if is_incremental() %}
    inner join {{ side_table('legs') }} as rebuilt on src.leg_id = rebuilt.leg_id
    {%- endif %}
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
        l.leg_id,
        l.account_id,
        l.symbol,
        l.trade_id,
        l.leg_no,
        l.order_id,
        l.side,
        l.position_side,
        l.exchange_position_key,
        l.episode_no,
        l.exchange_position_id,
        l.leg_seq,
        l.episode_dir,
        l.price,
        l.fill_quantity,
        l.leg_quantity,
        l.leg_qty_before,
        l.leg_qty_after,
        l.is_increasing,
        l.closes_episode,
        l.is_opening,
        l.fill_realized_pnl,
        l.fill_commission,
        l.commission_asset,
        l.trade_time_ms,
        l.trade_time,
        coalesce(a.position_mode, case when l.position_side = 'BOTH' then 'one_way' else 'hedge' end) as position_mode,
        case when s.signal_id is not null then k.strategy_position_id end as strategy_position_id,
        case
            when l.is_opening = 1 then 'opening'
            when k.link_role in ('entry', 'take_profit', 'stop_loss', 'close') and s.signal_id is null then 'unlinked'
            else coalesce(k.link_role, 'unlinked')
        end as link_role,
        {{ build_stamp_ms() }} as built_ms
    from legs as l
    left join links as k
        on l.account_id = k.account_id and l.symbol = k.symbol and l.order_id = k.order_id
    left join signals as s
        on k.strategy_position_id = s.signal_id and s.action in ('buy', 'sell')
    left join accounts as a
        on l.account_id = a.account_id
)

select * from final
