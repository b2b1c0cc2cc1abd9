-- SPEC §4.2: every leg's allocations sum to the leg's quantity, and no allocation exists
-- without a leg (R1, exactly). (No FULL OUTER JOIN: MySQL has none.)
with legs as (
    select leg_id, leg_quantity from {{ ref('int_exchange_legs') }}
),

allocated as (
    select leg_id, sum(quantity) as allocated from {{ ref('int_fill_allocations') }} group by leg_id
)

select l.leg_id, l.leg_quantity, a.allocated
from legs as l
left join allocated as a on l.leg_id = a.leg_id
where a.leg_id is null or l.leg_quantity <> a.allocated
union all
select a.leg_id, null, a.allocated
from allocated as a
left join legs as l on a.leg_id = l.leg_id
where l.leg_id is null
