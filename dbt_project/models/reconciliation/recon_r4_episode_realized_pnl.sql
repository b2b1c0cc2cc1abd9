-- SPEC §5 R4 (fail): per exchange position episode, the realized PnL of Binance's average-entry
-- rule as we walk it (computed_realized_pnl) equals the sum of Binance's own per-fill
-- `realizedPnl` (realized_pnl). Binance rounds each fill's realizedPnl to 8 decimals, so the
-- tolerance is 1e-8 per fill of the episode.
with episodes as (
    select * from {{ ref('exchange_positions') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

fills_per_episode as (
    select exchange_position_id, count(distinct trade_id) as fill_count
    from legs
    group by exchange_position_id
),

compared as (
    select
        e.account_id,
        e.exchange_position_id,
        e.status,
        e.realized_pnl as expected,
        e.computed_realized_pnl as observed,
        coalesce(f.fill_count, 0) as fill_count
    from episodes as e
    left join fills_per_episode as f on e.exchange_position_id = f.exchange_position_id
),

final as (
    select
        'R4' as check_id,
        'episode_realized_pnl' as check_name,
        'fail' as severity,
        exchange_position_id as check_key,
        'realized_pnl' as measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('0.00000001') }} * fill_count as tolerance,
        concat(status, ' episode, ', {{ to_text('fill_count') }}, ' fills') as detail
    from compared
    where abs(observed - expected) > {{ dec18('0.00000001') }} * fill_count
)

select * from final
