-- SPEC §4.2 (hedge mode): when an episode returns to flat, every strategy position that
-- entered in it is closed — by its own exits or by the episode-end re-allocation.
select p.strategy_position_id, p.status, e.exchange_position_id
from {{ ref('strategy_positions') }} as p
inner join {{ ref('exchange_positions') }} as e on p.exchange_position_id = e.exchange_position_id
where e.status = 'closed'
    and e.exchange_position_key not like '%BOTH'
    and p.status <> 'closed'
