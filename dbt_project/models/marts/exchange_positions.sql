{{ config(post_hook=[
    "{{ add_index(['exchange_position_id']) }}",
]) }}

-- SPEC §4.1: one row per exchange position episode — from a fill that leaves flat to the
-- fill that returns the key to exactly zero — with Binance's average-entry accounting,
-- our recomputation of it, and who contributed. Episode 1 of a key whose history starts
-- mid-position starts with its opening leg: opened_at is the key's first fill (or, with no
-- fill at all, the snapshot that showed it open), and its average starts at avg0.
with legs as (
    select * from {{ ref('int_exchange_legs') }}
),

averages as (
    select * from {{ ref('int_exchange_leg_averages') }}
),

allocations as (
    select * from {{ ref('int_fill_allocations') }}
),

contributions as (
    select * from {{ ref('position_contributions') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

legs_with_avg as (
    select
        l.*,
        a.avg_price_after,
        a.computed_realized_pnl,
        row_number() over (
            partition by l.exchange_position_id order by l.trade_time_ms desc, l.trade_id desc, l.leg_no desc
        ) as from_last
    from legs as l
    inner join averages as a on l.leg_id = a.leg_id
),

episodes as (
    select
        exchange_position_id,
        min(account_id) as account_id,
        min(exchange_position_key) as exchange_position_key,
        min(symbol) as symbol,
        min(position_side) as position_side,
        min(episode_no) as episode_no,
        min(episode_dir) as episode_dir,
        max(closes_episode) as is_closed,
        min(trade_time_ms) as opened_at_ms,
        max(case when closes_episode = 1 then trade_time_ms end) as closed_at_ms,
        -- an opening leg (SPEC §4.1) is no fill: an episode made only of it has no last fill
        max(case when is_opening = 0 then trade_time_ms end) as last_fill_ms,
        max(abs(leg_qty_after)) as peak_quantity,
        -- a fill's realizedPnl belongs to its first (closing) leg
        sum(case when leg_no = 1 then fill_realized_pnl else 0 end) as realized_pnl,
        sum(computed_realized_pnl) as computed_realized_pnl,
        max(case when from_last = 1 then leg_qty_after end) as current_quantity,
        max(case when from_last = 1 then avg_price_after end) as weighted_avg_price
    from legs_with_avg
    group by exchange_position_id
),

fees as (
    select
        exchange_position_id,
        -- commission paid in the symbol's margin asset (SPEC §3.2: never a pattern on the name), signed
        sum(case when a.commission_asset = m.margin_asset then a.commission else 0 end) as fees,
        sum(case when a.is_unattributed = 1 then case when a.allocation_type = 'entry' then a.quantity else -a.quantity end else 0 end)
            as unattributed_quantity
    from allocations as a
    left join margin_assets as m on a.symbol = m.symbol
    group by exchange_position_id
),

contributors as (
    select
        exchange_position_id,
        concat('[', {{ string_agg_sorted("concat('\"', strategy_id, '\"')", 'strategy_id') }}, ']') as contributing_strategies
    from (select distinct exchange_position_id, strategy_id from contributions) as distinct_strategies
    group by exchange_position_id
),

contribution_counts as (
    select exchange_position_id, count(*) as total_contributions
    from contributions
    group by exchange_position_id
),

latest as (
    -- a window over `episodes`, not a second GROUP BY of it: MariaDB evaluates a CTE once per
    -- reference, and `episodes` is the window and aggregate over every leg of the history
    select
        *,
        max(episode_no) over (partition by account_id, exchange_position_key) as latest_episode_no
    from episodes
),

final as (
    select
        e.exchange_position_id,
        e.account_id,
        e.exchange_position_key,
        e.symbol,
        ma.margin_asset,
        case
            when e.position_side <> 'BOTH' then e.position_side
            when e.episode_dir = 1 then 'LONG'
            else 'SHORT'
        end as side,
        e.episode_no,
        case when e.is_closed = 1 then 'closed' else 'open' end as status,
        {{ ms_to_timestamp('e.opened_at_ms') }} as opened_at,
        {{ ms_to_timestamp('e.closed_at_ms') }} as closed_at,
        {{ dec18("case when e.position_side = 'BOTH' then e.current_quantity else abs(e.current_quantity) end") }}
            as current_quantity,
        e.weighted_avg_price,
        {{ dec18('e.peak_quantity') }} as peak_quantity,
        {{ dec18('e.realized_pnl') }} as realized_pnl,
        {{ dec18('e.computed_realized_pnl') }} as computed_realized_pnl,
        {{ dec18('coalesce(f.fees, 0)') }} as fees,
        coalesce(c.contributing_strategies, '[]') as contributing_strategies,
        coalesce(cc.total_contributions, 0) as total_contributions,
        {{ dec18('coalesce(f.unattributed_quantity, 0)') }} as unattributed_quantity,
        {{ ms_to_timestamp('e.last_fill_ms') }} as last_fill_at,
        case when e.episode_no = e.latest_episode_no then true else false end as is_current
    from latest as e
    left join fees as f on e.exchange_position_id = f.exchange_position_id
    left join margin_assets as ma on e.symbol = ma.symbol
    left join contributors as c on e.exchange_position_id = c.exchange_position_id
    left join contribution_counts as cc on e.exchange_position_id = cc.exchange_position_id
)

select * from final
