-- SPEC §5 R6 on the allocations: per fill, the commission shares add up to the fill's
-- commission within 1e-9 (shares are rounded to 18 decimals each).
with shares as (
    select account_id, symbol, trade_id, sum(commission) as allocated
    from {{ ref('int_fill_allocations') }}
    group by account_id, symbol, trade_id
)

select s.account_id, s.symbol, s.trade_id, s.allocated, t.commission
from shares as s
inner join {{ ref('stg_binance__trades') }} as t
    on s.account_id = t.account_id and s.symbol = t.symbol and s.trade_id = t.trade_id
where abs(s.allocated - t.commission) > 0.000000001
