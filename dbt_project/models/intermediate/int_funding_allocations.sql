-- SPEC §4.4 funding, step 2: each FUNDING_FEE income is shared among its holders
-- (int_funding_holders) pro rata by signed quantity (18 decimals, the last position by id
-- takes the remainder). Funding nobody holds stays with the bucket of the symbol's latest
-- episode at that time.
with allocations as (
    select * from {{ ref('int_fill_allocations_linked') }}
),

funding as (
    select * from {{ ref('stg_binance__income') }}
    where income_type = 'FUNDING_FEE'
),

holders as (
    select * from {{ ref('int_funding_holders') }}
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
    -- the latest episode (fill time, then id) with a fill at or before each unallocated funding
    -- time: a running max over fills and funding events in time order, fills first at equal times
    select account_id, tran_id, latest
    from (
        select
            account_id,
            tran_id,
            is_funding,
            max(marker) over (
                partition by account_id, symbol order by at_ms, is_funding
                rows between unbounded preceding and current row
            ) as latest
        from (
            select account_id, symbol, tran_id, income_time_ms as at_ms, 1 as is_funding, null as marker
            from unallocated
            union all
            select
                account_id,
                symbol,
                null,
                trade_time_ms,
                0,
                concat(lpad({{ to_text('trade_time_ms') }}, 15, '0'), '|', exchange_position_id)
            from allocations
        ) as events
    ) as running
    where is_funding = 1
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
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        {{ id_text('strategy_position_id') }} as strategy_position_id,
        {{ dec18('funding_amount') }} as funding_amount
    from shared
    union all
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        {{ id_text('strategy_position_id') }},
        {{ dec18('funding_amount') }}
    from fallback
)

select * from final
