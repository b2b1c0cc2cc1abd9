-- SPEC §5 R1 (fail), coverage: every fill's allocations sum to the fill's quantity, and no
-- allocation exists without a fill. The fills are the raw facts (staging view over raw), the
-- allocations are the books (fct_fill_allocations), so a fill ingested after the last
-- transform, or removed from raw since, shows up here too. Tolerance 1e-9. The opening
-- allocation of a key whose history starts mid-position (role `opening`, SPEC §4.1) is no
-- fill's allocation and is not counted.
-- (No FULL OUTER JOIN: MySQL has none, so the two directions are a union.)
with fills as (
    select * from {{ ref('stg_binance__trades') }}
),

allocations as (
    select * from {{ ref('fct_fill_allocations') }}
),

allocated as (
    select
        account_id,
        symbol,
        trade_id,
        sum(quantity) as allocated_quantity,
        count(*) as allocation_count
    from allocations
    where role <> 'opening'
    group by account_id, symbol, trade_id
),

fills_vs_allocations as (
    select
        f.account_id,
        f.symbol,
        f.trade_id,
        f.quantity as expected,
        coalesce(a.allocated_quantity, 0) as observed,
        case
            when a.trade_id is null then 'the fill has no allocations'
            else concat({{ to_text('a.allocation_count') }}, ' allocations')
        end as detail
    from fills as f
    left join allocated as a
        on f.account_id = a.account_id and f.symbol = a.symbol and f.trade_id = a.trade_id
),

allocations_without_fill as (
    select
        a.account_id,
        a.symbol,
        a.trade_id,
        0 as expected,
        a.allocated_quantity as observed,
        'allocations of a fill that is not in the raw layer' as detail
    from allocated as a
    left join fills as f
        on a.account_id = f.account_id and a.symbol = f.symbol and a.trade_id = f.trade_id
    where f.trade_id is null
),

compared as (
    select * from fills_vs_allocations
    union all
    select * from allocations_without_fill
),

final as (
    select
        'R1' as check_id,
        'fill_coverage' as check_name,
        'fail' as severity,
        concat(account_id, ':', symbol, ':', {{ to_text('trade_id') }}) as check_key,
        'allocated_quantity' as measure,
        {{ dec18('expected') }} as expected,
        {{ dec18('observed') }} as observed,
        {{ dec18('observed - expected') }} as diff,
        {{ dec18('0.000000001') }} as tolerance,
        detail
    from compared
    where abs(observed - expected) > 0.000000001
)

select * from final
