-- SPEC §4.1, Binance's average-entry rule, leg by leg within each episode:
-- an increasing leg moves avg = (|qty|·avg + q·p) / (|qty| + q), kept to 18 decimals;
-- a reducing leg leaves avg and books (p − avg)·q·dir. The rule is a recurrence, so it
-- is walked with a recursive CTE, all episodes advancing one leg per iteration.
{{ config(pre_hook="{{ recursion_limit() }}", post_hook="{{ add_index(['leg_id']) }}") }}

with recursive legs as (
    select * from {{ ref('int_exchange_legs') }}
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
    inner join legs as l
        on w.account_id = l.account_id
        and w.exchange_position_key = l.exchange_position_key
        and w.episode_no = l.episode_no
        and l.leg_seq = w.leg_seq + 1
),

final as (
    select
        leg_id,
        avg_after as avg_price_after,
        computed_pnl as computed_realized_pnl
    from walk
)

select * from final
