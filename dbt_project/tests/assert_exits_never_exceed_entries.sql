-- SPEC §4.2: a strategy position's exits never exceed its entries (the excess is an
-- over-close in the bucket), and its quantities are consistent with its status.
select strategy_position_id, entry_quantity, exit_quantity, open_quantity, status
from {{ ref('strategy_positions') }}
where not is_unattributed
    and (
        exit_quantity > entry_quantity
        or open_quantity <> entry_quantity - exit_quantity
        or (status = 'closed' and open_quantity <> 0)
        or (status = 'open' and exit_quantity <> 0)
    )
