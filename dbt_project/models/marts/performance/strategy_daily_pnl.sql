-- SPEC §6: one row per account, strategy, margin asset and UTC day of its active span — from
-- its first to its last fill or income day in that asset — with days without activity present
-- as zeros (a date spine). Amounts of different margin assets are never added: a strategy that
-- trades USDT- and BTC-margined contracts has a curve per asset. Realized PnL is booked on the
-- UTC day of each exit fill, fees and other (converted) fees on the day of the fill that paid
-- them, funding and other income on the day of the income, so every day sums to the
-- strategy_positions totals.
{{ config(pre_hook="{{ recursion_limit() }}") }}

with recursive activity as (
    select * from {{ ref('strategy_daily_activity') }}
),

spans as (
    select account_id, strategy_id, asset_group, min(day_no) as first_day_no, max(day_no) as last_day_no
    from activity
    group by account_id, strategy_id, asset_group
),

longest_span as (
    select max(last_day_no - first_day_no) as max_offset from spans
),

day_offsets (day_offset) as (
    select {{ to_int('0') }}
    union all
    select o.day_offset + 1
    from day_offsets as o
    inner join longest_span as l on o.day_offset < l.max_offset
),

spine as (
    select s.account_id, s.strategy_id, s.asset_group, s.first_day_no + o.day_offset as day_no
    from spans as s
    inner join day_offsets as o on o.day_offset <= s.last_day_no - s.first_day_no
),

daily as (
    select
        s.account_id,
        s.strategy_id,
        s.asset_group,
        s.day_no,
        coalesce(a.realized_pnl, 0) as realized_pnl,
        coalesce(a.fees, 0) as fees,
        coalesce(a.other_fees, 0) as other_fees,
        coalesce(a.unpriced, 0) as unpriced,
        coalesce(a.funding_fees, 0) as funding_fees,
        coalesce(a.other_income, 0) as other_income,
        coalesce(a.realized_pnl, 0) - coalesce(a.fees, 0) - coalesce(a.other_fees, 0)
            + coalesce(a.funding_fees, 0) + coalesce(a.other_income, 0) as net_pnl,
        coalesce(a.fill_count, 0) as fill_count,
        coalesce(a.positions_opened, 0) as positions_opened,
        coalesce(a.positions_closed, 0) as positions_closed,
        coalesce(a.wins, 0) as wins,
        coalesce(a.losses, 0) as losses,
        coalesce(a.breakevens, 0) as breakevens
    from spine as s
    left join activity as a
        on s.account_id = a.account_id
        and s.strategy_id = a.strategy_id
        and s.asset_group = a.asset_group
        and s.day_no = a.day_no
),

cumulative as (
    select
        *,
        sum(net_pnl) over (
            partition by account_id, strategy_id, asset_group order by day_no rows between unbounded preceding and current row
        ) as cumulative_net_pnl,
        row_number() over (partition by account_id, strategy_id, asset_group order by day_no) as day_index
    from daily
),

peaks as (
    select
        *,
        max(cumulative_net_pnl) over (
            partition by account_id, strategy_id, asset_group order by day_no rows between unbounded preceding and current row
        ) as running_max
    from cumulative
),

final as (
    select
        concat(account_id, ':', strategy_id, ':', asset_group, ':', {{ to_text(day_no_to_date('day_no')) }})
            as daily_pnl_id,
        account_id,
        strategy_id,
        asset_group as margin_asset,
        {{ day_no_to_date('day_no') }} as pnl_date,
        {{ to_int('day_index') }} as day_index,
        {{ dec18('realized_pnl') }} as realized_pnl,
        {{ dec18('fees') }} as fees,
        {{ dec18('other_fees') }} as other_fees,
        {{ dec18('funding_fees') }} as funding_fees,
        {{ dec18('other_income') }} as other_income,
        {{ dec18('net_pnl') }} as net_pnl,
        {{ dec18('cumulative_net_pnl') }} as cumulative_net_pnl,
        -- the curve starts at 0 before the first day, so a losing first day is a drawdown
        {{ dec18('case when running_max > 0 then running_max else 0 end') }} as peak_net_pnl,
        {{ dec18('case when running_max > 0 then running_max else 0 end - cumulative_net_pnl') }} as drawdown,
        {{ to_int('fill_count') }} as fill_count,
        {{ to_int('unpriced') }} as unpriced_amounts,
        {{ to_int('positions_opened') }} as positions_opened,
        {{ to_int('positions_closed') }} as positions_closed,
        {{ to_int('wins') }} as wins,
        {{ to_int('losses') }} as losses,
        {{ to_int('breakevens') }} as breakevens
    from peaks
)

select * from final
