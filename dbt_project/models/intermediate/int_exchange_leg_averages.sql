-- SPEC §4.1, Binance's average-entry rule, leg by leg within each episode:
-- an increasing leg moves avg = (|qty|·avg + q·p) / (|qty| + q), kept to 18 decimals;
-- a reducing leg leaves avg and books (p − avg)·q·dir. The rule is a recurrence, so it
-- is walked with a recursive CTE, all episodes advancing one leg per iteration.
-- Incremental by key suffix, after int_exchange_legs: the legs that table wrote since this one's
-- last run (built_ms newer than any here) start, per key, at the first episode it rebuilt; those
-- episodes and every later one of the key are walked again (macros/incremental_legs.sql). A key
-- with no legs any more loses its rows (consumer_rebuild_plan_sql).
{{ config(
    materialized='incremental',
    unique_key='leg_id',
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook=[
        "{{ recursion_limit() }}",
        "drop table if exists {{ side_table('plan') }}",
        "{{ create_side_table('plan', consumer_rebuild_plan_sql(ref('int_exchange_legs'))) }}",
        "{{ delete_planned_suffix() }}",
    ],
    post_hook=[
        "{{ add_index(['leg_id']) }}",
        "{{ add_index(['exchange_position_id']) }}",
        "{{ add_index(['account_id', 'exchange_position_key', 'episode_no']) }}",
        "{{ add_index(['built_ms']) }}",
    ],
) }}

with recursive legs as (
    select src.* from {{ ref('int_exchange_legs') }} as src
    {%- if is_incremental() %}
    inner join {{ side_table('plan') }} as p
        on src.account_id = p.account_id
        and src.exchange_position_key = p.exchange_position_key
        and src.episode_no >= p.from_episode_no
    {%- endif %}
),

walk (leg_id, account_id, exchange_position_key, episode_no, leg_seq, avg_after, computed_pnl) as (
    select
        leg_id,
        account_id,
        exchange_position_key,
        episode_no,
        leg_seq,
        {{ dec18('price') }},
        {{ dec18('0') }}
    from legs
    where leg_seq = 1
    union all
    select
        l.leg_id,
        l.account_id,
        l.exchange_position_key,
        l.episode_no,
        l.leg_seq,
        case
            when l.is_increasing = 1 then
                {{ exact_div(
                    'w.avg_after * ' ~ qty8('abs(l.leg_qty_before)') ~ ' + ' ~ qty8('l.price') ~ ' * ' ~ qty8('l.leg_quantity'),
                    qty8('abs(l.leg_qty_after)')
                ) }}
            else w.avg_after
        end,
        case
            when l.is_increasing = 1 then {{ dec18('0') }}
            else {{ dec18('(l.price - w.avg_after) * ' ~ qty8('l.leg_quantity') ~ ' * l.episode_dir') }}
        end
    from walk as w
    -- the base table (indexed on key, episode, leg_seq), not the CTE, probed from the previous
    -- iteration's rows: each leg is read once, however long the episode
    {{ straight_join() }} {{ ref('int_exchange_legs') }} as l
        on w.account_id = l.account_id
        and w.exchange_position_key = l.exchange_position_key
        and w.episode_no = l.episode_no
        and l.leg_seq = w.leg_seq + 1
),

final as (
    select
        w.leg_id,
        l.account_id,
        l.exchange_position_key,
        l.episode_no,
        l.exchange_position_id,
        l.leg_seq,
        l.leg_quantity,
        l.leg_qty_after,
        l.price,
        w.avg_after as avg_price_after,
        w.computed_pnl as computed_realized_pnl,
        l.built_ms
    from walk as w
    inner join {{ ref('int_exchange_legs') }} as l on w.leg_id = l.leg_id
)

select * from final
