-- SPEC §4.1, Binance's average-entry rule, leg by leg within each episode:
-- an increasing leg moves avg = (|qty|·avg + q·p) / (|qty| + q), kept to 18 decimals;
-- a reducing leg leaves avg and books (p − avg)·q·dir. The rule is a recurrence, so it
-- is walked with a recursive CTE, all episodes advancing one leg per iteration.
-- Incremental by episode: only episodes whose legs changed are walked again. A changed opening
-- state (a newer snapshot, an earlier fill) changes the opening leg's quantity or price, or the
-- running quantity of every leg after it, so its episode is walked again.
{{ config(
    materialized='incremental',
    unique_key='exchange_position_id',
    incremental_strategy='delete+insert' if target.type == 'duckdb' else none,
    pre_hook=[
        "{{ recursion_limit() }}",
        "{{ delete_changed_episodes(ref('int_exchange_legs'), ['leg_id', 'exchange_position_id', 'leg_seq', 'leg_quantity', 'price', 'leg_qty_after']) }}",
    ],
    post_hook=["{{ add_index(['leg_id']) }}", "{{ add_index(['exchange_position_id']) }}"],
) }}

with recursive legs as (
    select * from {{ ref('int_exchange_legs') }} as src
    {{ episodes_to_build('src') }}
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
        l.exchange_position_id,
        l.leg_seq,
        l.leg_quantity,
        l.leg_qty_after,
        l.price,
        w.avg_after as avg_price_after,
        w.computed_pnl as computed_realized_pnl
    from walk as w
    inner join {{ ref('int_exchange_legs') }} as l on w.leg_id = l.leg_id
)

select * from final
