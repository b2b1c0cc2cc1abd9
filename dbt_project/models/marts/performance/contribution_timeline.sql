-- SPEC §6: every contribution (strategy position × episode it entered) on its episode's
-- time line: when it came in relative to the episode and the previous entry, how the
-- exchange quantity grew, and what averaging moved between its own PnL and Binance's.
-- Amounts are in the margin asset of the contribution's symbol (margin_asset).
with contributions as (
    select * from {{ ref('position_contributions') }}
),

episodes as (
    select * from {{ ref('exchange_positions') }}
),

margin_assets as (
    -- the symbol's margin asset, resolved once for every model (SPEC §3.2)
    select symbol, margin_asset from {{ ref('int_margin_assets_resolved') }}
),

timed as (
    select
        c.*,
        m.margin_asset,
        {{ timestamp_to_ms('c.contribution_time') }} as contribution_ms,
        {{ timestamp_to_ms('c.exit_time') }} as exit_ms,
        {{ timestamp_to_ms('e.opened_at') }} as episode_opened_ms,
        e.status as episode_status,
        e.total_contributions as episode_contributions,
        e.peak_quantity as episode_peak_quantity,
        e.weighted_avg_price as episode_avg_price
    from contributions as c
    inner join episodes as e on c.exchange_position_id = e.exchange_position_id
    left join margin_assets as m on c.symbol = m.symbol
),

sequenced as (
    select
        *,
        lag(contribution_ms) over (partition by exchange_position_id order by position_sequence) as previous_ms,
        sum(contribution_quantity) over (
            partition by exchange_position_id order by position_sequence rows between unbounded preceding and current row
        ) as cumulative_quantity
    from timed
),

final as (
    select
        contribution_id,
        exchange_position_id,
        exchange_position_key,
        symbol,
        margin_asset,
        position_side,
        strategy_id,
        strategy_position_id,
        position_sequence,
        episode_contributions,
        contribution_time,
        cast(contribution_ms - episode_opened_ms as decimal(38, 3)) * cast(0.001 as decimal(4, 3))
            as seconds_after_episode_open,
        case
            when previous_ms is not null
                then cast(contribution_ms - previous_ms as decimal(38, 3)) * cast(0.001 as decimal(4, 3))
        end as seconds_after_previous_contribution,
        contribution_quantity,
        contribution_entry_price,
        exchange_quantity_before,
        exchange_quantity_after,
        {{ dec18('cumulative_quantity') }} as cumulative_contribution_quantity,
        {{ safe_div('contribution_quantity', 'episode_peak_quantity', 18) }} as share_of_peak_quantity,
        episode_avg_price,
        status,
        close_reason,
        exit_time,
        exit_price,
        case
            when exit_ms is not null and status = 'closed'
                then cast(exit_ms - contribution_ms as decimal(38, 3)) * cast(0.001 as decimal(4, 3))
        end as holding_seconds,
        contribution_pnl,
        contribution_pnl_pct,
        exchange_realized_pnl,
        {{ dec18('exchange_realized_pnl - contribution_pnl') }} as averaging_effect,
        episode_status
    from sequenced
)

select * from final
