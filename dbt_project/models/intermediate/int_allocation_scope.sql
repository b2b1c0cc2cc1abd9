-- What the allocation chain rebuilds this run (macros/incremental_allocations.sql): the episodes
-- and strategy positions of every connected component (positions joined to the episodes their legs
-- are in) that holds a leg int_legs_linked wrote since the chain last completed. Empty on a full
-- refresh, which rebuilds the chain whole.
-- depends_on: {{ ref('int_legs_linked') }}
{{ config(
    pre_hook="{{ build_allocation_scope() }}",
    post_hook="{{ add_index(['node_type', 'node_id']) }}",
) }}

with episodes as (
    select node_id from {{ side_table('episodes') }}
),

positions as (
    select node_id from {{ side_table('positions') }}
),

final as (
    select 'episode' as node_type, node_id from episodes
    union all
    select 'position' as node_type, node_id from positions
)

select * from final
