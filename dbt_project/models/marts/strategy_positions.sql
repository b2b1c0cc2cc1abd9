{{ config(post_hook=[
    "{{ add_index(['strategy_position_id']) }}",
    "{{ add_index(['account_id', 'exchange_position_key', 'entry_time_ms']) }}",
]) }}

-- SPEC §4.3: one row per opening signal with at least one entry fill, plus one bucket
-- per episode that holds unattributed quantity. Prices and PnL are exact: VWAPs and
-- ratios are divided once, at the end, and rounded half away from zero to 18 places.
with allocations as (
    select * from {{ ref('int_fill_allocations') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

funding as (
    select strategy_position_id, sum(funding_amount) as funding_fees
    from {{ ref('int_funding_allocations') }}
    group by strategy_position_id
),

marks as (
    select * from {{ ref('int_latest_marks') }}
),

margin_assets as (
    select * from {{ ref('int_margin_assets_resolved') }}
),

fees_converted as (
    select * from {{ ref('int_fees_converted') }}
),

income_attributed as (
    select * from {{ ref('int_income_attributed') }}
),

fee_totals as (
    -- other_fees is NULL as soon as one of its allocations' commission could not be converted
    select
        strategy_position_id,
        sum(fee) as fees,
        case when count(*) = count(other_fee) then sum(other_fee) end as other_fees
    from fees_converted
    group by strategy_position_id
),

fees_per_asset as (
    -- assets whose shares add up to zero (a rebate that cancelled a fee) are left out
    select strategy_position_id, commission_asset, sum(commission) as commission
    from fees_converted
    group by strategy_position_id, commission_asset
    having sum(commission) <> 0
),

fees_json as (
    -- {"BNB": "0.0001", "USDT": "-0.0125"}: native amounts as exact decimal strings, keys sorted
    {%- set asset_pair %}concat('"', commission_asset, '": "', {{ decimal_text('commission') }}, '"'){% endset %}
    select
        strategy_position_id,
        concat('{', {{ string_agg_sorted(asset_pair, 'commission_asset', ', ') }}, '}') as fees_by_asset
    from fees_per_asset
    group by strategy_position_id
),

other_income as (
    -- §4.5 income shares in the margin asset; NULL as soon as one could not be converted
    select
        strategy_position_id,
        case when count(*) = count(amount_in_margin_asset) then sum(amount_in_margin_asset) end as other_income
    from income_attributed
    group by strategy_position_id
),

ordered_exits as (
    select
        strategy_position_id,
        role,
        row_number() over (
            partition by strategy_position_id order by trade_time_ms desc, trade_id desc, leg_no desc, is_reallocated desc
        ) as rn
    from allocations
    where allocation_type = 'exit'
),

last_exit as (
    select strategy_position_id, role as last_exit_role
    from ordered_exits
    where rn = 1
),

rule_closed as (
    select strategy_position_id, max(role) as rule_reason
    from allocations
    where is_reallocated = 1
    group by strategy_position_id
),

linked as (
    select * from {{ ref('int_fill_allocations_linked') }}
),

position_meta as (
    -- every strategy position and bucket that ever received an allocation
    select
        strategy_position_id,
        min(account_id) as account_id,
        min(symbol) as symbol,
        min(exchange_position_key) as exchange_position_key,
        max(case when strategy_position_id like 'unattributed:%' then 1 else 0 end) as is_unattributed,
        min(case when strategy_position_id like 'unattributed:%' then exchange_position_id end) as bucket_episode_id,
        max(case when strategy_position_id like 'unattributed:%' then episode_dir end) as bucket_dir,
        min(case when role = 'entry' then position_episode_id end) as position_episode_id
    from linked
    group by strategy_position_id
),

quantities as (
    select
        strategy_position_id,
        sum(case when allocation_type = 'entry' then quantity else 0 end) as entry_q,
        -- entry prices at 18 decimals: an opening allocation (SPEC §4.1) is priced at its recovered average
        sum(case when allocation_type = 'entry' then {{ qty8('quantity') }} * {{ dec18('price') }} else 0 end) as entry_pq,
        min(case when allocation_type = 'entry' then trade_time_ms end) as entry_time_ms,
        sum(case when allocation_type = 'exit' then quantity else 0 end) as exit_q,
        sum(case when allocation_type = 'exit' then {{ qty8('quantity') }} * {{ qty8('price') }} else 0 end) as exit_pq,
        max(case when allocation_type = 'exit' then trade_time_ms end) as exit_time_ms
    from allocations
    group by strategy_position_id
),

positions as (
    -- a bucket whose every allocation was re-allocated only remains if it carried funding or income
    select
        m.strategy_position_id,
        m.account_id,
        m.symbol,
        m.exchange_position_key,
        m.is_unattributed,
        m.bucket_episode_id,
        m.bucket_dir,
        m.position_episode_id,
        coalesce(q.entry_q, 0) as entry_q,
        coalesce(q.entry_pq, 0) as entry_pq,
        q.entry_time_ms,
        coalesce(q.exit_q, 0) as exit_q,
        coalesce(q.exit_pq, 0) as exit_pq,
        q.exit_time_ms,
        coalesce(ft.fees, 0) as fees,
        case when ft.strategy_position_id is null then {{ dec18('0') }} else ft.other_fees end as other_fees,
        coalesce(fj.fees_by_asset, '{}') as fees_by_asset,
        case when oi.strategy_position_id is null then {{ dec18('0') }} else oi.other_income end as other_income
    from position_meta as m
    left join quantities as q on m.strategy_position_id = q.strategy_position_id
    left join funding as f on m.strategy_position_id = f.strategy_position_id
    left join fee_totals as ft on m.strategy_position_id = ft.strategy_position_id
    left join fees_json as fj on m.strategy_position_id = fj.strategy_position_id
    left join other_income as oi on m.strategy_position_id = oi.strategy_position_id
    where q.strategy_position_id is not null or coalesce(f.funding_fees, 0) <> 0 or oi.strategy_position_id is not null
),

enriched as (
    select
        p.*,
        s.signal_id,
        s.strategy_id as signal_strategy_id,
        s.side as signal_side,
        s.take_profit,
        s.stop_loss,
        s.take_profit_pct,
        s.stop_loss_pct,
        case
            when p.is_unattributed = 1 then p.bucket_dir
            when s.side = 'SHORT' then -1
            else 1
        end as dir,
        -- the VWAP the position's PnL is measured from: its entries, or (a bucket that only
        -- reduced) its exits, which makes its realized PnL 0 and its exposure unrealized
        case when p.entry_q > 0 then p.entry_pq else p.exit_pq end as basis_pq,
        case when p.entry_q > 0 then p.entry_q else p.exit_q end as basis_q,
        coalesce(f.funding_fees, {{ dec18('0') }}) as funding_fees,
        m.mark_price,
        ma.margin_asset,
        le.last_exit_role,
        rc.rule_reason
    from positions as p
    left join signals as s on p.strategy_position_id = s.signal_id
    left join funding as f on p.strategy_position_id = f.strategy_position_id
    left join marks as m on p.account_id = m.account_id and p.symbol = m.symbol
    left join margin_assets as ma on p.symbol = ma.symbol
    left join last_exit as le on p.strategy_position_id = le.strategy_position_id
    left join rule_closed as rc on p.strategy_position_id = rc.strategy_position_id
),

measured as (
    select
        *,
        entry_q - exit_q as open_q,
        case when entry_q > 0 then {{ exact_div('entry_pq', 'entry_q') }} end as entry_price_raw,
        case when basis_q > 0 then {{ exact_div('basis_pq', 'basis_q') }} end as basis_price,
        case when exit_q > 0 then {{ exact_div('exit_pq', 'exit_q') }} end as exit_price,
        case
            when entry_q > 0 then dir * {{ exact_div(
                'cast(exit_pq as decimal(38, 16)) * ' ~ qty8('entry_q') ~ ' - ' ~ notional_times('entry_pq', 'exit_q'),
                qty8('entry_q')
            ) }}
            else {{ dec18('0') }}
        end as realized_pnl,
        case
            when exit_q > 0 and entry_q > 0 then dir * {{ exact_div(
                '100 * (cast(exit_pq as decimal(38, 16)) * ' ~ qty8('entry_q') ~ ' - ' ~ notional_times('entry_pq', 'exit_q') ~ ')',
                notional_times('entry_pq', 'exit_q'),
                scale=24
            ) }}
            when exit_q > 0 then {{ dec18('0') }}
        end as realized_pnl_pct
    from enriched
),

final as (
    select
        strategy_position_id,
        case when is_unattributed = 1 then 'unattributed' else signal_strategy_id end as strategy_id,
        case when is_unattributed = 1 then null else signal_id end as signal_id,
        account_id,
        symbol,
        margin_asset,
        case when dir = 1 then 'LONG' else 'SHORT' end as side,
        exchange_position_key,
        case when is_unattributed = 1 then bucket_episode_id else position_episode_id end as exchange_position_id,
        {{ dec18('entry_q') }} as entry_quantity,
        case when is_unattributed = 1 and entry_q = 0 then basis_price else entry_price_raw end as entry_price,
        {{ ms_to_timestamp('entry_time_ms') }} as entry_time,
        entry_time_ms,
        case
            when is_unattributed = 1 or entry_q = 0 then null
            when take_profit is not null then take_profit
            when take_profit_pct is not null then {{ exact_div('cast(entry_pq as decimal(38, 16)) * (1 + dir * ' ~ qty8('take_profit_pct') ~ ')', qty8('entry_q')) }}
        end as take_profit_price,
        case
            when is_unattributed = 1 or entry_q = 0 then null
            when stop_loss is not null then stop_loss
            when stop_loss_pct is not null then {{ exact_div('cast(entry_pq as decimal(38, 16)) * (1 - dir * ' ~ qty8('stop_loss_pct') ~ ')', qty8('entry_q')) }}
        end as stop_loss_price,
        {{ dec18('exit_q') }} as exit_quantity,
        exit_price,
        {{ ms_to_timestamp('exit_time_ms') }} as exit_time,
        exit_time_ms,
        {{ dec18("case when is_unattributed = 1 and right(exchange_position_key, 5) = '_BOTH' then dir * open_q else open_q end") }}
            as open_quantity,
        case
            when is_unattributed = 1 then case when open_q = 0 then 'closed' else 'open' end
            when exit_q = 0 then 'open'
            when open_q = 0 then 'closed'
            else 'partial'
        end as status,
        case
            when open_q <> 0 or (is_unattributed = 0 and exit_q = 0) then null
            when rule_reason is not null then rule_reason
            when last_exit_role = 'take_profit' then 'take_profit'
            when last_exit_role = 'stop_loss' then 'stop_loss'
            when last_exit_role = 'close' then 'manual'
            when last_exit_role = 'liquidation' then 'liquidation'
            when last_exit_role is not null then 'external'
        end as close_reason,
        realized_pnl,
        realized_pnl_pct,
        {{ dec18('fees') }} as fees,
        {{ dec18('other_fees') }} as other_fees,
        fees_by_asset,
        {{ dec18('funding_fees') }} as funding_fees,
        {{ dec18('other_income') }} as other_income,
        {{ dec18('realized_pnl - fees - other_fees + funding_fees + other_income') }} as realized_pnl_net,
        mark_price,
        case
            when open_q = 0 or basis_q = 0 or mark_price is null then {{ dec18('0') }}
            else dir * {{ exact_div(
                notional_times(qty8('mark_price') ~ ' * ' ~ qty8('basis_q') ~ ' - basis_pq', 'open_q'),
                qty8('basis_q')
            ) }}
        end as unrealized_pnl,
        case
            when (is_unattributed = 1 and open_q = 0 and entry_time_ms is not null and exit_time_ms is not null)
                or (is_unattributed = 0 and open_q = 0 and exit_q > 0)
                then cast(exit_time_ms - entry_time_ms as decimal(38, 3)) * cast(0.001 as decimal(4, 3))
        end as holding_seconds,
        case when is_unattributed = 1 then true else false end as is_unattributed
    from measured
)

select * from final
