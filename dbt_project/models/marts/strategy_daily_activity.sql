-- SPEC §6 strategy_daily_pnl, step 1: what each account, strategy, margin asset and UTC day
-- saw — realized PnL booked on the UTC day of each exit fill, fees and other (converted) fees
-- on the day of the fill that paid them, funding and other income on the day of the income,
-- fills and positions opened / closed / won / lost. Days without activity have no row here;
-- strategy_daily_pnl adds them. A table of its own: the mart reads it three times (the spans,
-- the longest span, the days), and MariaDB evaluates a CTE once per reference — three times
-- the whole history (12 s each after 20 days of 30 strategies x 10 symbols).
with positions as (
    -- a symbol whose margin asset nothing names (strategy_positions.margin_asset NULL) is
    -- kept apart as 'unknown:{symbol}' rather than added to another asset
    select *, coalesce(margin_asset, concat('unknown:', symbol)) as asset_group
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed'
),

allocations as (
    select * from {{ ref('fct_fill_allocations') }}
    where is_unattributed = 0
),

funding as (
    select * from {{ ref('int_funding_allocations') }}
),

fees_converted as (
    -- each allocation's commission share: `fee` in the margin asset as is, `other_fee` paid in
    -- another asset and converted (NULL without a price) — what strategy_positions adds up
    select * from {{ ref('int_fees_converted') }}
),

income_attributed as (
    -- SPEC §4.5 income shares of positions, in their margin asset (NULL without a price)
    select * from {{ ref('int_income_attributed') }}
),

dated_allocations as (
    select
        strategy_position_id,
        allocation_type,
        quantity,
        price,
        {{ ms_to_day_no('trade_time_ms') }} as day_no
    from allocations
),

entry_basis as (
    select
        strategy_position_id,
        sum(quantity) as entry_q,
        sum({{ qty8('quantity') }} * {{ qty8('price') }}) as entry_pq
    from dated_allocations
    where allocation_type = 'entry'
    group by strategy_position_id
),

exit_days as (
    select
        strategy_position_id,
        day_no,
        sum(quantity) as exit_q,
        sum({{ qty8('quantity') }} * {{ qty8('price') }}) as exit_pq
    from dated_allocations
    where allocation_type = 'exit'
    group by strategy_position_id, day_no
),

realized_by_day as (
    -- (exit VWAP of the day − entry VWAP)·exit quantity of the day·dir, measured exactly as
    -- strategy_positions measures the whole position; the last exit day takes the remainder
    select
        x.strategy_position_id,
        x.day_no,
        p.realized_pnl as position_realized_pnl,
        row_number() over (partition by x.strategy_position_id order by x.day_no desc) as from_last,
        case when p.side = 'SHORT' then -1 else 1 end * {{ exact_div(
            'cast(x.exit_pq as decimal(38, 16)) * ' ~ qty8('b.entry_q') ~ ' - cast(b.entry_pq as decimal(38, 16)) * ' ~ qty8('x.exit_q'),
            qty8('b.entry_q')
        ) }} as day_realized_pnl
    from exit_days as x
    inner join entry_basis as b on x.strategy_position_id = b.strategy_position_id
    inner join positions as p on x.strategy_position_id = p.strategy_position_id
),

realized_days as (
    select
        strategy_position_id,
        day_no,
        case
            when from_last = 1 then position_realized_pnl - coalesce(sum(case when from_last > 1 then day_realized_pnl end) over (
                partition by strategy_position_id
            ), 0)
            else day_realized_pnl
        end as realized_pnl
    from realized_by_day
),

fill_days as (
    select strategy_position_id, day_no, count(*) as fill_count
    from dated_allocations
    group by strategy_position_id, day_no
),

fee_days as (
    -- unpriced: allocations whose other-asset commission had no kline close to convert it
    select
        strategy_position_id,
        {{ ms_to_day_no('trade_time_ms') }} as day_no,
        sum(fee) as fees,
        sum(other_fee) as other_fees,
        count(*) - count(other_fee) as unpriced
    from fees_converted
    group by strategy_position_id, {{ ms_to_day_no('trade_time_ms') }}
),

funding_days as (
    select strategy_position_id, {{ ms_to_day_no('income_time_ms') }} as day_no, sum(funding_amount) as funding_fees
    from funding
    group by strategy_position_id, {{ ms_to_day_no('income_time_ms') }}
),

other_income_days as (
    select
        strategy_position_id,
        {{ ms_to_day_no('income_time_ms') }} as day_no,
        sum(amount_in_margin_asset) as other_income,
        count(*) - count(amount_in_margin_asset) as unpriced
    from income_attributed
    group by strategy_position_id, {{ ms_to_day_no('income_time_ms') }}
),

position_events as (
    -- what each position adds to a day; counts of opened/closed trades on their entry/exit day
    select strategy_position_id, day_no, realized_pnl, 0 as fees, 0 as other_fees, 0 as unpriced,
        0 as funding_fees, 0 as other_income, 0 as fill_count,
        0 as opened, 0 as closed, 0 as won, 0 as lost, 0 as broke_even
    from realized_days
    union all
    select strategy_position_id, day_no, 0, 0, 0, 0, 0, 0, fill_count, 0, 0, 0, 0, 0
    from fill_days
    union all
    select strategy_position_id, day_no, 0, fees, coalesce(other_fees, 0), unpriced, 0, 0, 0, 0, 0, 0, 0, 0
    from fee_days
    union all
    select strategy_position_id, day_no, 0, 0, 0, 0, funding_fees, 0, 0, 0, 0, 0, 0, 0
    from funding_days
    union all
    select strategy_position_id, day_no, 0, 0, 0, unpriced, 0, coalesce(other_income, 0), 0, 0, 0, 0, 0, 0
    from other_income_days
    union all
    select strategy_position_id, {{ ms_to_day_no('entry_time_ms') }}, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0
    from positions
    union all
    select
        strategy_position_id,
        {{ ms_to_day_no('exit_time_ms') }},
        0, 0, 0, 0, 0, 0, 0, 0, 1,
        case when realized_pnl_net > 0 then 1 else 0 end,
        case when realized_pnl_net < 0 then 1 else 0 end,
        case when realized_pnl_net = 0 then 1 else 0 end
    from positions
    where status = 'closed'
),

activity as (
    select
        p.account_id,
        p.strategy_id,
        p.asset_group,
        e.day_no,
        sum(e.realized_pnl) as realized_pnl,
        sum(e.fees) as fees,
        sum(e.other_fees) as other_fees,
        sum(e.unpriced) as unpriced,
        sum(e.funding_fees) as funding_fees,
        sum(e.other_income) as other_income,
        sum(e.fill_count) as fill_count,
        sum(e.opened) as positions_opened,
        sum(e.closed) as positions_closed,
        sum(e.won) as wins,
        sum(e.lost) as losses,
        sum(e.broke_even) as breakevens
    from position_events as e
    inner join positions as p on e.strategy_position_id = p.strategy_position_id
    group by p.account_id, p.strategy_id, p.asset_group, e.day_no
)

select * from activity
