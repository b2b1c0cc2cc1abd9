-- SPEC §6: the account side of the leaderboard — one row per account, margin asset and scope:
-- scope 'account' counts and sums every strategy position of the account in that asset (the
-- unattributed buckets included: the account's totals), scope 'unattributed' only the buckets
-- (liquidations, manual trades, other bots' fills). The same trade statistics as
-- strategy_performance (macro trade_stats), so a report shows buckets and totals without
-- computing anything. Amounts of different margin assets are never added.
with positions as (
    -- a symbol whose margin asset nothing names is kept apart as 'unknown:{symbol}'
    select
        *,
        coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
),

scoped as (
    select
        *,
        'account' as scope
    from positions
    union all
    select
        *,
        'unattributed' as scope
    from positions
    where strategy_id = 'unattributed'
),

sums as (
    select
        account_id,
        asset_group,
        scope,
        {{ trade_stats_sums() }}
    from scoped
    group by account_id, asset_group, scope
),

final as (
    select
        concat(account_id, ':', asset_group, ':', scope) as account_performance_key,
        account_id,
        asset_group as margin_asset,
        scope,
        positions_total,
        positions_open,
        positions_partial,
        positions_closed,
        positions_open + positions_partial as positions_holding,
        {{ trade_stats_ratios() }}
    from sums
)

select * from final
