-- SPEC §6: exchange position episodes that two or more strategies entered — one row per
-- episode and strategy: who put in how much, what it earned by its own entries
-- (attributed, Σ contribution_pnl) against what Binance's average-entry accounting booked
-- for its exits (Σ exchange_realized_pnl), next to the episode's Binance totals. An episode
-- trades one symbol, so all its amounts are in that symbol's margin_asset.
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

episode_totals as (
    select
        exchange_position_id,
        count(distinct strategy_id) as strategy_count,
        count(*) as contribution_count,
        sum(contribution_quantity) as contributed_quantity,
        sum(contribution_pnl) as attributed_pnl,
        sum(exchange_realized_pnl) as exchange_realized_pnl
    from contributions
    group by exchange_position_id
),

buckets as (
    -- the episode's unattributed bucket position (its own-entry realized PnL), when it has one
    select
        exchange_position_id,
        realized_pnl
    from {{ ref('strategy_positions') }}
    where strategy_id = 'unattributed'
),

per_strategy as (
    select
        exchange_position_id,
        strategy_id,
        count(*) as strategy_positions,
        min(position_sequence) as first_sequence,
        min(contribution_time) as first_contribution_at,
        sum(contribution_quantity) as contribution_quantity,
        sum({{ qty8('contribution_quantity') }} * {{ qty8('contribution_entry_price') }}) as contribution_pq,
        sum(contribution_pnl) as attributed_pnl,
        sum(exchange_realized_pnl) as exchange_realized_pnl
    from contributions
    group by exchange_position_id, strategy_id
),

final as (
    select
        concat(p.exchange_position_id, ':', p.strategy_id) as multi_strategy_position_id,
        p.exchange_position_id,
        e.account_id,
        e.exchange_position_key,
        e.symbol,
        m.margin_asset,
        e.side,
        e.status as episode_status,
        e.opened_at,
        e.closed_at,
        {{ to_int('t.strategy_count') }} as strategy_count,
        {{ to_int('t.contribution_count') }} as contribution_count,
        p.strategy_id,
        {{ to_int('p.strategy_positions') }} as strategy_positions,
        {{ to_int('p.first_sequence') }} as first_sequence,
        p.first_contribution_at,
        {{ dec18('p.contribution_quantity') }} as contribution_quantity,
        {{ exact_div('p.contribution_pq', 'p.contribution_quantity') }} as contribution_entry_price,
        {{ safe_div('p.contribution_quantity', 't.contributed_quantity', 18) }} as contribution_share,
        {{ dec18('p.attributed_pnl') }} as attributed_pnl,
        {{ dec18('p.exchange_realized_pnl') }} as exchange_realized_pnl,
        {{ dec18('p.exchange_realized_pnl - p.attributed_pnl') }} as averaging_effect,
        e.weighted_avg_price as episode_avg_price,
        e.peak_quantity as episode_peak_quantity,
        {{ dec18('t.contributed_quantity') }} as episode_contributed_quantity,
        {{ dec18('t.attributed_pnl') }} as episode_attributed_pnl,
        {{ dec18('t.exchange_realized_pnl') }} as episode_exchange_realized_pnl,
        {{ dec18('t.exchange_realized_pnl - t.attributed_pnl') }} as episode_averaging_effect,
        e.realized_pnl as episode_realized_pnl,
        {{ dec18('e.realized_pnl - t.exchange_realized_pnl') }} as episode_unattributed_exchange_pnl,
        {{ dec18('b.realized_pnl') }} as episode_unattributed_pnl,
        e.unattributed_quantity as episode_unattributed_quantity
    from per_strategy as p
    inner join episode_totals as t on p.exchange_position_id = t.exchange_position_id
    inner join episodes as e on p.exchange_position_id = e.exchange_position_id
    left join margin_assets as m on e.symbol = m.symbol
    left join buckets as b on p.exchange_position_id = b.exchange_position_id
    where t.strategy_count >= 2
)

select * from final
