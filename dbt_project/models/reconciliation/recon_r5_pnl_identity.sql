-- SPEC §5 R5 (fail), the PnL identity: per exchange position key at the mark M of the latest
-- positionRisk snapshot, Σ over its strategy positions and buckets of (realized + unrealized
-- PnL) equals the exchange's average-rule realized PnL of all its episodes plus the current
-- episode's unrealized PnL, (M − average entry)·signed quantity. What averaging moves between
-- strategies must net to zero. Tolerance 1e-8 per fill of the key.
--
-- The exchange side uses our walk of Binance's average rule; R4 holds that walk against
-- Binance's own realizedPnl, so each identity is checked once. A key whose quantities do not
-- reconcile (R2) cannot satisfy the identity either: its R5 row is kept as a warning and R2
-- carries the failure. Keys with open quantity but no mark price are warnings too.
with positions as (
    select * from {{ ref('strategy_positions') }}
),

episodes as (
    select * from {{ ref('exchange_positions') }}
),

fills as (
    select * from {{ ref('stg_binance__trades') }}
),

quantity_mismatches as (
    select distinct check_key from {{ ref('recon_r2_open_quantity') }}
),

marks as (
    select * from {{ ref('int_latest_marks') }}
),

strategy_side as (
    select
        account_id,
        exchange_position_key,
        sum(realized_pnl + unrealized_pnl) as pnl,
        count(*) as position_count
    from positions
    group by account_id, exchange_position_key
),

exchange_realized as (
    select
        account_id,
        exchange_position_key,
        min(symbol) as symbol,
        sum(computed_realized_pnl) as realized_pnl
    from episodes
    group by account_id, exchange_position_key
),

current_episodes as (
    select
        account_id,
        exchange_position_key,
        weighted_avg_price,
        case
            when status = 'closed' then {{ dec18('0') }}
            when right(exchange_position_key, 5) = '_BOTH' then current_quantity
            when side = 'SHORT' then -current_quantity
            else current_quantity
        end as signed_quantity
    from episodes
    where is_current
),

fill_counts as (
    select account_id, exchange_position_key, count(*) as fill_count
    from fills
    group by account_id, exchange_position_key
),

exchange_side as (
    select
        r.account_id,
        r.exchange_position_key,
        m.mark_price,
        c.signed_quantity,
        r.realized_pnl + case
            when c.signed_quantity = 0 or m.mark_price is null then {{ dec18('0') }}
            else {{ dec18(
                'cast(m.mark_price - c.weighted_avg_price as decimal(38, 16)) * ' ~ qty8('c.signed_quantity')
            ) }}
        end as pnl
    from exchange_realized as r
    inner join current_episodes as c
        on r.account_id = c.account_id and r.exchange_position_key = c.exchange_position_key
    left join marks as m on r.account_id = m.account_id and r.symbol = m.symbol
),

compared as (
    select
        e.account_id,
        e.exchange_position_key,
        e.pnl as expected,
        coalesce(s.pnl, 0) as observed,
        coalesce(f.fill_count, 0) as fill_count,
        case when e.mark_price is null and e.signed_quantity <> 0 then 1 else 0 end as lacks_mark,
        coalesce(s.position_count, 0) as position_count
    from exchange_side as e
    left join strategy_side as s
        on e.account_id = s.account_id and e.exchange_position_key = s.exchange_position_key
    left join fill_counts as f
        on e.account_id = f.account_id and e.exchange_position_key = f.exchange_position_key
),

final as (
    select
        'R5' as check_id,
        'pnl_identity' as check_name,
        case
            when c.lacks_mark = 1 or q.check_key is not null then 'warn'
            else 'fail'
        end as severity,
        concat(c.account_id, ':', c.exchange_position_key) as check_key,
        'realized_plus_unrealized_pnl' as measure,
        {{ dec18('c.expected') }} as expected,
        {{ dec18('c.observed') }} as observed,
        {{ dec18('c.observed - c.expected') }} as diff,
        {{ dec18('0.00000001') }} * c.fill_count as tolerance,
        case
            when c.lacks_mark = 1 then 'open position without a mark price (no positionRisk snapshot)'
            when q.check_key is not null then 'quantities do not reconcile on this key (see R2)'
            else concat({{ to_text('c.position_count') }}, ' strategy positions, ', {{ to_text('c.fill_count') }}, ' fills')
        end as detail
    from compared as c
    left join quantity_mismatches as q on concat(c.account_id, ':', c.exchange_position_key) = q.check_key
    where abs(c.observed - c.expected) > {{ dec18('0.00000001') }} * c.fill_count
)

select * from final
