{{ config(post_hook=[
    "{{ add_index(['leg_id']) }}",
    "{{ add_index(['strategy_position_id']) }}",
    "{{ add_index(['exchange_position_id']) }}",
]) }}

-- SPEC §4.2 before the episode-end rule: every leg split into allocations.
--   * a linked entry → its strategy position;
--   * a linked take_profit/stop_loss/close → its position, capped in (time, id) order so
--     its exits never exceed its entries; in hedge mode an exit outside the episode the
--     position entered in is wholly an over-close;
--   * liquidations, unlinked legs and over-close excess → the episode's bucket
--     `unattributed:{exchange_position_id}` (increasing legs add, reducing legs subtract);
--   * the opening leg of a key whose history starts mid-position (§4.1) → the bucket of
--     episode 1 with role `opening`: |qty0| at avg0, an entry.
-- A signal whose entry fills all predate the history has no entry leg, hence no episode: each
-- linked exit of it is ineligible below, wholly an over-close in the bucket (§4.1, §4.2).
-- The cap is a running clamp: allocated_k = X_k + min(0, min_{j≤k}(E_j − X_j)), with E the
-- entries and X the exit demand so far, which needs only window functions.
with linked_legs as (
    select * from {{ ref('int_legs_linked') }}
),

entry_legs as (
    select * from linked_legs where link_role = 'entry'
),

position_episode as (
    -- a strategy position belongs to the episode of its first entry leg
    select strategy_position_id, exchange_position_id as position_episode_id
    from (
        select
            strategy_position_id,
            exchange_position_id,
            row_number() over (
                partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
            ) as rn
        from entry_legs
    ) as ranked
    where rn = 1
),

exit_legs as (
    select
        l.*,
        p.position_episode_id,
        case
            when p.position_episode_id is null then 0
            when l.position_mode = 'hedge' and l.exchange_position_id <> p.position_episode_id then 0
            else 1
        end as is_eligible
    from linked_legs as l
    left join position_episode as p
        on l.strategy_position_id = p.strategy_position_id
    where l.link_role in ('take_profit', 'stop_loss', 'close')
),

position_events as (
    select strategy_position_id, leg_id, trade_time_ms, trade_id, leg_no, leg_quantity, 1 as is_entry
    from entry_legs
    union all
    select strategy_position_id, leg_id, trade_time_ms, trade_id, leg_no, leg_quantity, 0 as is_entry
    from exit_legs
    where is_eligible = 1
),

running as (
    select
        *,
        sum(case when is_entry = 1 then leg_quantity else 0 end) over w as entries_so_far,
        sum(case when is_entry = 0 then leg_quantity else 0 end) over w as exits_so_far
    from position_events
    window w as (
        partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
        rows between unbounded preceding and current row
    )
),

clamped as (
    select
        strategy_position_id,
        leg_id,
        trade_time_ms,
        trade_id,
        leg_no,
        leg_quantity,
        exits_so_far + least(
            {{ dec18('0') }},
            min(entries_so_far - exits_so_far) over (
                partition by strategy_position_id order by trade_time_ms, trade_id, leg_no
                rows between unbounded preceding and current row
            )
        ) as allocated_so_far
    from running
    where is_entry = 0
),

exit_allocated as (
    select
        leg_id,
        strategy_position_id,
        allocated_so_far - coalesce(
            lag(allocated_so_far) over (partition by strategy_position_id order by trade_time_ms, trade_id, leg_no),
            {{ dec18('0') }}
        ) as allocated_quantity
    from clamped
),

strategy_entries as (
    select
        leg_id, strategy_position_id, 'entry' as role, 'entry' as allocation_type,
        leg_quantity as quantity, 0 as is_over_close
    from entry_legs
),

strategy_exits as (
    select
        e.leg_id, e.strategy_position_id, l.link_role as role, 'exit' as allocation_type,
        e.allocated_quantity as quantity, 0 as is_over_close
    from exit_allocated as e
    inner join exit_legs as l on e.leg_id = l.leg_id
    where e.allocated_quantity > 0
),

over_closes as (
    select
        l.leg_id,
        l.leg_quantity - coalesce(e.allocated_quantity, {{ dec18('0') }}) as quantity
    from exit_legs as l
    left join exit_allocated as e on l.leg_id = e.leg_id
    where l.leg_quantity - coalesce(e.allocated_quantity, {{ dec18('0') }}) > 0
),

bucket_rows as (
    select
        l.leg_id,
        concat('unattributed:', l.exchange_position_id) as strategy_position_id,
        l.link_role as role,
        case when l.is_increasing = 1 then 'entry' else 'exit' end as allocation_type,
        l.leg_quantity as quantity,
        0 as is_over_close
    from linked_legs as l
    where l.link_role in ('liquidation', 'unlinked', 'opening')
    union all
    select
        o.leg_id,
        concat('unattributed:', l.exchange_position_id) as strategy_position_id,
        'over_close' as role,
        case when l.is_increasing = 1 then 'entry' else 'exit' end as allocation_type,
        o.quantity,
        1 as is_over_close
    from over_closes as o
    inner join linked_legs as l on o.leg_id = l.leg_id
),

allocations as (
    select * from strategy_entries
    union all
    select * from strategy_exits
    union all
    select * from bucket_rows
),

final as (
    select
        a.leg_id,
        a.strategy_position_id,
        a.role,
        a.allocation_type,
        {{ dec18('a.quantity') }} as quantity,
        a.is_over_close,
        l.account_id,
        l.symbol,
        l.trade_id,
        l.leg_no,
        l.exchange_position_key,
        l.exchange_position_id,
        l.episode_dir,
        l.position_mode,
        l.price,
        l.fill_quantity,
        l.fill_commission,
        l.commission_asset,
        l.fill_realized_pnl,
        l.trade_time_ms,
        l.trade_time,
        l.closes_episode,
        coalesce(p.position_episode_id, l.exchange_position_id) as position_episode_id
    from allocations as a
    inner join linked_legs as l on a.leg_id = l.leg_id
    left join position_episode as p on a.strategy_position_id = p.strategy_position_id
)

select * from final
