-- SPEC §5 R8 (warn), linkage: what the books could not attribute cleanly. Not an error of the
-- books, so every row is a warning:
--   * unattributed_volume: quantity a bucket holds from liquidations, unlinked fills and the opening
--     state of a history that starts mid-position (role `opening`), per bucket;
--   * over_close: the excess of a linked exit beyond its position's entries, per fill leg;
--   * signal_without_fills: buy/sell signals without a single entry fill;
--   * side_mismatch: a linked order whose side (or, in hedge mode, positionSide) disagrees with
--     its signal's side — an entry of a LONG signal must BUY on the LONG key, its exits SELL;
--   * dangling_link: an explicit order link (SPEC §3.3) naming a signal that no signal source has
--     sent (of its account), named by its link key — its order then falls to the other rules or
--     the bucket (observed: 1 link).
with allocations as (
    select * from {{ ref('fct_fill_allocations') }}
),

linked_legs as (
    select * from {{ ref('int_legs_linked') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

explicit_links as (
    select * from {{ ref('stg_signals__order_links') }}
),

unattributed_volume as (
    select
        strategy_position_id as check_key,
        'unattributed_volume' as measure,
        {{ dec18('0') }} as expected,
        sum(quantity) as observed,
        concat(
            {{ to_text('count(*)') }}, ' bucket allocations from ',
            concat_ws(
                ', ',
                case when max(case when role = 'liquidation' then 1 else 0 end) = 1 then 'liquidations' end,
                case when max(case when role = 'unlinked' then 1 else 0 end) = 1 then 'unlinked fills' end,
                case when max(case when role = 'opening' then 1 else 0 end) = 1 then 'the opening state (SPEC §4.1)' end
            )
        ) as detail
    from allocations
    where is_unattributed = 1 and is_over_close = 0
    group by strategy_position_id
),

over_closes as (
    select
        concat(account_id, ':', symbol, ':', {{ to_text('trade_id') }}, ':', {{ to_text('leg_no') }}) as check_key,
        'over_close' as measure,
        {{ dec18('0') }} as expected,
        sum(quantity) as observed,
        concat('order ', {{ to_text('min(order_id)') }}, ' closed more than its position entered') as detail
    from allocations
    where is_over_close = 1
    group by account_id, symbol, trade_id, leg_no
),

entered as (
    select distinct strategy_position_id
    from allocations
    where allocation_type = 'entry' and is_unattributed = 0
),

signals_without_fills as (
    select
        concat(s.account_id, ':', s.signal_id) as check_key,
        'signal_without_fills' as measure,
        {{ dec18('s.quantity') }} as expected,
        {{ dec18('0') }} as observed,
        concat(s.strategy_id, ' ', s.action, ' ', s.symbol, ' had no entry fill') as detail
    from signals as s
    left join entered as e on s.signal_id = e.strategy_position_id
    where s.action in ('buy', 'sell') and e.strategy_position_id is null
),

linked_with_signal as (
    select
        l.account_id,
        l.symbol,
        l.order_id,
        l.side,
        l.position_side,
        l.position_mode,
        l.link_role,
        l.leg_quantity,
        s.signal_id,
        s.side as signal_side,
        case
            when l.link_role = 'entry' then case when s.side = 'LONG' then 'BUY' else 'SELL' end
            else case when s.side = 'LONG' then 'SELL' else 'BUY' end
        end as expected_order_side
    from linked_legs as l
    inner join signals as s on l.strategy_position_id = s.signal_id
    where l.link_role in ('entry', 'take_profit', 'stop_loss', 'close')
),

side_mismatches as (
    select
        concat(account_id, ':', symbol, ':', {{ to_text('order_id') }}) as check_key,
        'side_mismatch' as measure,
        {{ dec18('0') }} as expected,
        sum(leg_quantity) as observed,
        concat(
            min(link_role), ' order ', min(side), ' ', min(position_side), ' linked to ',
            min(signal_side), ' signal ', min(signal_id)
        ) as detail
    from linked_with_signal
    where side <> expected_order_side
        or (position_mode = 'hedge' and position_side <> signal_side)
    group by account_id, symbol, order_id
),

dangling_links as (
    select
        concat(l.account_id, ':', l.link_ref) as check_key,
        'dangling_link' as measure,
        {{ dec18('0') }} as expected,
        {{ dec18('1') }} as observed,
        concat(l.role, ' link ', l.link_ref, ' names signal ', l.signal_id, ', which no signal source has sent')
            as detail
    from explicit_links as l
    left join signals as s on l.signal_id = s.signal_id and l.account_id = s.account_id
    where s.signal_id is null
),

compared as (
    select * from unattributed_volume
    union all
    select * from over_closes
    union all
    select * from signals_without_fills
    union all
    select * from side_mismatches
    union all
    select * from dangling_links
),

final as (
    select
        'R8' as check_id,
        'linkage' as check_name,
        'warn' as severity,
        check_key,
        measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('0') }} as tolerance,
        detail
    from compared
)

select * from final
