-- SPEC §5 R4 (fail): per exchange position episode, the realized PnL of Binance's average-entry
-- rule as we walk it (computed_realized_pnl) equals the sum of Binance's own per-fill
-- `realizedPnl` (realized_pnl). Binance rounds each fill's realizedPnl to 8 decimals, so the
-- tolerance is 1e-8 per fill of the episode. The opening episode of a key whose history starts
-- mid-position (SPEC §4.1) starts from an average recovered from a rounded realizedPnl (or a
-- shown entryPrice): its tolerance adds that recovery's bound, `realized_pnl_tolerance` of
-- int_opening_states (derived there). The opening leg is no fill and is not counted.
with episodes as (
    select * from {{ ref('exchange_positions') }}
),

legs as (
    select * from {{ ref('int_exchange_legs') }}
),

openings as (
    select * from {{ ref('int_opening_states') }}
),

fills_per_episode as (
    select exchange_position_id, count(distinct trade_id) as fill_count
    from legs
    where is_opening = 0
    group by exchange_position_id
),

recovery as (
    select concat(account_id, ':', exchange_position_key, ':1') as exchange_position_id, realized_pnl_tolerance
    from openings
),

compared as (
    select
        e.account_id,
        e.exchange_position_id,
        e.status,
        e.realized_pnl as expected,
        e.computed_realized_pnl as observed,
        coalesce(f.fill_count, 0) as fill_count,
        {{ dec18('0.00000001') }} * coalesce(f.fill_count, 0) + coalesce(r.realized_pnl_tolerance, 0) as tolerance
    from episodes as e
    left join fills_per_episode as f on e.exchange_position_id = f.exchange_position_id
    left join recovery as r on e.exchange_position_id = r.exchange_position_id
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
        {{ dec18('tolerance') }} as tolerance,
        concat(status, ' episode, ', {{ to_text('fill_count') }}, ' fills') as detail
    from compared
    where abs(observed - expected) > tolerance
)

select * from final
