-- SPEC §4.4 funding: each FUNDING_FEE income is shared among the strategy positions and
-- buckets open on that symbol at the funding time, pro rata by signed quantity (18
-- decimals, the last position by id takes the remainder). Holdings change at the fill
-- time, or at the episode end for quantity the episode-end rule moved. Funding nobody
-- holds stays with the bucket of the symbol's latest episode.
with allocations as (
    select * from {{ ref('int_fill_allocations_linked') }}
),

reallocations as (
    select * from {{ ref('int_episode_reallocations') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

funding as (
    select * from {{ ref('stg_binance__income') }}
    where income_type = 'FUNDING_FEE'
),

directions as (
    select distinct
        a.strategy_position_id,
        a.account_id,
        a.symbol,
        case
            when a.strategy_position_id like 'unattributed:%' then a.episode_dir
            when s.side = 'SHORT' then -1
            else 1
        end as direction
    from allocations as a
    left join signals as s on a.strategy_position_id = s.signal_id
),

deltas as (
    select
        strategy_position_id,
        trade_time_ms as effective_time_ms,
        case when allocation_type = 'entry' then quantity else -quantity end as delta
    from allocations
    union all
    select strategy_position_id, effective_time_ms, -quantity as delta
    from reallocations
    union all
    select concat('unattributed:', exchange_position_id), effective_time_ms, quantity as delta
    from reallocations
),

per_time as (
    select strategy_position_id, effective_time_ms, sum(delta) as delta
    from deltas
    group by strategy_position_id, effective_time_ms
),

intervals as (
    select
        p.strategy_position_id,
        d.account_id,
        d.symbol,
        d.direction,
        p.effective_time_ms as from_ms,
        lead(p.effective_time_ms) over (partition by p.strategy_position_id order by p.effective_time_ms) as until_ms,
        sum(p.delta) over (
            partition by p.strategy_position_id order by p.effective_time_ms
            rows between unbounded preceding and current row
        ) as open_quantity
    from per_time as p
    inner join directions as d on p.strategy_position_id = d.strategy_position_id
),

holders as (
    select
        f.account_id,
        f.tran_id,
        f.symbol,
        f.income_time_ms,
        f.amount,
        i.strategy_position_id,
        i.open_quantity * i.direction as signed_quantity
    from funding as f
    inner join intervals as i
        on f.account_id = i.account_id
        and f.symbol = i.symbol
        and i.from_ms <= f.income_time_ms
        and (i.until_ms is null or i.until_ms > f.income_time_ms)
    where i.open_quantity <> 0
),

ranked as (
    select
        *,
        row_number() over (partition by account_id, tran_id order by strategy_position_id desc) as rank_from_last,
        sum(signed_quantity) over (partition by account_id, tran_id) as total_signed
    from holders
),

base as (
    select
        *,
        case
            when total_signed = 0 then null
            else {{ exact_div(qty8('amount') ~ ' * ' ~ qty8('signed_quantity'), qty8('total_signed')) }}
        end as base_share
    from ranked
),

shared as (
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        strategy_position_id,
        case
            when rank_from_last = 1 then
                amount - coalesce(sum(case when rank_from_last > 1 then base_share end) over (
                    partition by account_id, tran_id
                ), {{ dec18('0') }})
            else base_share
        end as funding_amount
    from base
    where total_signed <> 0
),

unallocated as (
    select f.*
    from funding as f
    left join (select distinct account_id, tran_id from shared) as s
        on f.account_id = s.account_id and f.tran_id = s.tran_id
    where s.tran_id is null
),

latest_episode as (
    select
        u.account_id,
        u.tran_id,
        max(concat(lpad({{ to_text('a.trade_time_ms') }}, 15, '0'), '|', a.exchange_position_id)) as latest
    from unallocated as u
    left join allocations as a
        on u.account_id = a.account_id and u.symbol = a.symbol and a.trade_time_ms <= u.income_time_ms
    group by u.account_id, u.tran_id
),

fallback as (
    select
        u.account_id,
        u.tran_id,
        u.symbol,
        u.income_time_ms,
        coalesce(
            concat('unattributed:', substr(l.latest, 17)),
            concat('unattributed:', u.account_id, ':', u.symbol, ':funding')
        ) as strategy_position_id,
        u.amount as funding_amount
    from unallocated as u
    left join latest_episode as l on u.account_id = l.account_id and u.tran_id = l.tran_id
),

final as (
    select account_id, tran_id, symbol, income_time_ms, strategy_position_id, {{ dec18('funding_amount') }} as funding_amount
    from shared
    union all
    select account_id, tran_id, symbol, income_time_ms, strategy_position_id, {{ dec18('funding_amount') }}
    from fallback
)

select * from final
