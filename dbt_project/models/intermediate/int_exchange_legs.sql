-- SPEC §4.1: the fills of each key in (time, id) order, split into legs. A fill that
-- takes a one-way (BOTH) key across zero becomes a closing leg (old episode) and an
-- opening leg (new episode). An episode starts with a leg that leaves flat.
-- A key whose history starts mid-position (int_opening_states) starts with a synthetic
-- opening leg: no trade (`is_opening` = 1, trade_id 0, leg_no 0, no order), |qty0| at avg0,
-- realizedPnl and commission 0, at the time of the key's first fill — sorted before that
-- fill, since Binance trade ids are positive — or at the snapshot's time for a key with
-- no fill. The running quantity of the fills starts from qty0. Episodes, averages,
-- allocations (role `opening`, to the bucket) and R2–R5 then need nothing else; R1 and the
-- fee/income checks count fills, which the opening leg is not.
--
-- Incremental by key suffix: each run rebuilds only the episodes of each key from the one its
-- earliest new fill lands in (macros/incremental_legs.sql says why that is exact). The plan's
-- keys start from the fill that closed the last kept episode, with the quantity before it.
{{ config(
    materialized='incremental',
    unique_key='leg_id',
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook=[
        "drop table if exists {{ side_table('changes') }}",
        "drop table if exists {{ side_table('plan') }}",
        "drop table if exists {{ side_table('fills') }}",
        "{{ create_side_table('changes', legs_changes_sql()) }}",
        "{{ create_side_table('plan', legs_rebuild_plan_sql()) }}",
        "{{ create_side_table('fills', legs_rebuild_fills_sql()) }}",
        "{{ delete_planned_suffix() }}",
    ],
    post_hook=[
        "{{ add_index(['account_id', 'exchange_position_key', 'episode_no', 'leg_seq']) }}",
        "{{ add_index(['account_id', 'exchange_position_key', 'trade_time_ms', 'trade_id', 'leg_no']) }}",
        "{{ add_index(['is_opening']) }}",
        "{{ add_index(['account_id', 'symbol', 'trade_id', 'leg_no']) }}",
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['built_ms']) }}",
    ],
) }}

{%- if is_incremental() %}
with plan as (
    select * from {{ side_table('plan') }}
),

-- the planned keys' fills: all of them for a key rebuilt whole (by the fills' primary key prefix),
-- else the ones listed in the fills table from the boundary fill on (by primary key)
trades as (
    select
        t.*,
        p.is_full,
        p.from_episode_no - 1 as episode_offset,
        p.boundary_qty_before as start_quantity,
        case when t.trade_time_ms = p.boundary_time_ms and t.trade_id = p.boundary_trade_id then 1 else 0 end
            as is_boundary
    from {{ side_table('fills') }} as f
    inner join {{ ref('stg_binance__trades') }} as t
        on t.account_id = f.account_id and t.symbol = f.symbol and t.trade_id = f.trade_id
    inner join plan as p
        on t.account_id = p.account_id and t.exchange_position_key = p.exchange_position_key
    where p.is_full = 0
        and (
            t.trade_time_ms > p.boundary_time_ms
            or (t.trade_time_ms = p.boundary_time_ms and t.trade_id >= p.boundary_trade_id)
        )
    union all
    select
        t.*,
        p.is_full,
        0 as episode_offset,
        {{ dec18('null') }} as start_quantity,
        0 as is_boundary
    from plan as p
    inner join {{ ref('stg_binance__trades') }} as t
        on t.account_id = p.account_id and t.symbol = p.symbol and t.position_side = p.position_side
    where p.is_full = 1
),

openings as (
    select o.*
    from {{ ref('int_opening_states') }} as o
    inner join plan as p
        on o.account_id = p.account_id and o.exchange_position_key = p.exchange_position_key
    where p.is_full = 1
),
{%- else %}
with trades as (
    select
        *,
        1 as is_full,
        0 as episode_offset,
        {{ dec18('null') }} as start_quantity,
        0 as is_boundary
    from {{ ref('stg_binance__trades') }}
),

openings as (
    select * from {{ ref('int_opening_states') }}
),
{%- endif %}

running as (
    select
        t.*,
        coalesce(t.start_quantity, o.opening_quantity, {{ dec18('0') }}) + sum(t.signed_quantity) over (
            partition by t.account_id, t.exchange_position_key
            order by t.trade_time_ms, t.trade_id
            rows between unbounded preceding and current row
        ) as qty_after_fill
    from trades as t
    left join openings as o
        on t.account_id = o.account_id and t.exchange_position_key = o.exchange_position_key
),

with_before as (
    select
        *,
        qty_after_fill - signed_quantity as qty_before_fill,
        case
            when (qty_after_fill - signed_quantity > 0 and qty_after_fill < 0)
                or (qty_after_fill - signed_quantity < 0 and qty_after_fill > 0)
                then 1
            else 0
        end as crosses_zero
    from running
),

legs as (
    select
        account_id, symbol, trade_id, order_id, side, position_side, exchange_position_key, price, quantity,
        realized_pnl, commission, commission_asset, trade_time_ms, trade_time,
        1 as leg_no,
        case when crosses_zero = 1 then abs(qty_before_fill) else quantity end as leg_quantity,
        qty_before_fill as leg_qty_before,
        case when crosses_zero = 1 then {{ dec18('0') }} else qty_after_fill end as leg_qty_after,
        0 as is_opening,
        episode_offset,
        is_boundary
    from with_before
    union all
    select
        account_id, symbol, trade_id, order_id, side, position_side, exchange_position_key, price, quantity,
        realized_pnl, commission, commission_asset, trade_time_ms, trade_time,
        2 as leg_no,
        abs(qty_after_fill) as leg_quantity,
        {{ dec18('0') }} as leg_qty_before,
        qty_after_fill as leg_qty_after,
        0 as is_opening,
        episode_offset,
        0 as is_boundary
    from with_before
    where crosses_zero = 1
    union all
    select
        account_id, symbol, {{ to_int('0') }} as trade_id, null as order_id,
        case when opening_quantity > 0 then 'BUY' else 'SELL' end as side,
        position_side, exchange_position_key, opening_price as price, abs(opening_quantity) as quantity,
        {{ dec18('0') }} as realized_pnl, {{ dec18('0') }} as commission, null as commission_asset,
        opening_time_ms as trade_time_ms, opening_time as trade_time,
        0 as leg_no,
        abs(opening_quantity) as leg_quantity,
        {{ dec18('0') }} as leg_qty_before,
        opening_quantity as leg_qty_after,
        1 as is_opening,
        0 as episode_offset,
        0 as is_boundary
    from openings
),

numbered as (
    select
        *,
        {{ to_int("episode_offset + sum(case when leg_qty_before = 0 then 1 else 0 end) over (
            partition by account_id, exchange_position_key
            order by trade_time_ms, trade_id, leg_no
            rows between unbounded preceding and current row
        )") }} as episode_no,
        case when abs(leg_qty_after) > abs(leg_qty_before) then 1 else 0 end as is_increasing,
        case when leg_qty_after = 0 then 1 else 0 end as closes_episode
    from legs
),

final as (
    select
        case
            when is_opening = 1 then concat(account_id, ':', exchange_position_key, ':opening')
            else concat(account_id, ':', symbol, ':', {{ to_text('trade_id') }}, ':', {{ to_text('leg_no') }})
        end as leg_id,
        account_id,
        symbol,
        trade_id,
        leg_no,
        order_id,
        side,
        position_side,
        exchange_position_key,
        episode_no,
        concat(account_id, ':', exchange_position_key, ':', {{ to_text('episode_no') }}) as exchange_position_id,
        {{ to_int("row_number() over (
            partition by account_id, exchange_position_key, episode_no
            order by trade_time_ms, trade_id, leg_no
        )") }} as leg_seq,
        -- an episode's direction is the sign of its first (opening) leg
        {{ to_int("first_value(case when leg_qty_after > 0 then 1 else -1 end) over (
            partition by account_id, exchange_position_key, episode_no
            order by trade_time_ms, trade_id, leg_no
            rows between unbounded preceding and unbounded following
        )") }} as episode_dir,
        price,
        quantity as fill_quantity,
        leg_quantity,
        leg_qty_before,
        leg_qty_after,
        is_increasing,
        closes_episode,
        is_opening,
        realized_pnl as fill_realized_pnl,
        commission as fill_commission,
        commission_asset,
        trade_time_ms,
        trade_time,
        {{ build_stamp_ms() }} as built_ms
    from numbered
    -- the boundary fill's closing leg (is_boundary: leg 1 only) belongs to the last kept episode
    -- (its episode's windows above hold only this leg, so dropping it here changes no other row)
    where is_boundary = 0
)

select * from final
