-- SPEC §6: pairs of strategies that entered the same exchange position key within
-- var('co_entry_window_seconds', default 300) seconds of each other — one row per account,
-- key and strategy pair (strategy_a < strategy_b), with the count and up to three examples.
{%- set window_seconds = var('co_entry_window_seconds', 300) | int %}
{{ config(pre_hook="{{ derived_merge(false) }}", post_hook="{{ derived_merge(true) }}") }}

{%- set window_ms = window_seconds * 1000 %}

with positions as (
    -- only the columns used: MariaDB materializes this twice (derived_merge off, above), and
    -- strategy_positions' whole rows made those temporary tables several times larger
    select
        account_id,
        exchange_position_key,
        symbol,
        strategy_id,
        strategy_position_id,
        exchange_position_id,
        entry_time_ms,
        {{ ms_bucket('entry_time_ms', window_ms) }} as entry_bucket
    from {{ ref('strategy_positions') }}
    where strategy_id <> 'unattributed' and entry_time_ms is not null
),

neighbour_buckets as (
    -- entries at most one window apart lie in the same or an adjacent window-wide bucket, so
    -- the pairs are found by equality joins on the bucket (a range join on the time would scan
    -- every entry of the key per entry on MySQL/MariaDB)
    select -1 as bucket_offset
    union all
    select 0
    union all
    select 1
),

probes as (
    select a.*, a.entry_bucket + n.bucket_offset as probe_bucket
    from positions as a
    cross join neighbour_buckets as n
),

pairs as (
    select
        a.account_id,
        a.exchange_position_key,
        a.symbol,
        a.strategy_id as strategy_a,
        b.strategy_id as strategy_b,
        a.strategy_position_id as position_a,
        b.strategy_position_id as position_b,
        case when a.entry_time_ms < b.entry_time_ms then a.entry_time_ms else b.entry_time_ms end as co_entry_ms,
        abs(a.entry_time_ms - b.entry_time_ms) as gap_ms,
        case when a.exchange_position_id = b.exchange_position_id then 1 else 0 end as same_episode
    from probes as a
    inner join positions as b
        on a.account_id = b.account_id
        and a.exchange_position_key = b.exchange_position_key
        and a.probe_bucket = b.entry_bucket
        and a.strategy_id < b.strategy_id
        and b.entry_time_ms between a.entry_time_ms - {{ window_ms }} and a.entry_time_ms + {{ window_ms }}
),

numbered as (
    select
        *,
        row_number() over (
            partition by account_id, exchange_position_key, strategy_a, strategy_b
            order by co_entry_ms, position_a, position_b
        ) as example_no
    from pairs
),

grouped as (
    select
        account_id,
        exchange_position_key,
        min(symbol) as symbol,
        strategy_a,
        strategy_b,
        count(*) as co_entries,
        count(distinct position_a) as positions_a,
        count(distinct position_b) as positions_b,
        sum(same_episode) as same_episode_sum,
        sum(gap_ms) as gap_ms_sum,
        max(gap_ms) as max_gap_ms,
        min(co_entry_ms) as first_ms,
        max(co_entry_ms) as last_ms,
        {{ string_agg_sorted(
            "case when example_no <= 3 then concat(position_a, '+', position_b) end", 'example_no', ', '
        ) }} as examples
    from numbered
    group by account_id, exchange_position_key, strategy_a, strategy_b
),

final as (
    select
        concat(account_id, ':', exchange_position_key, ':', strategy_a, ':', strategy_b) as co_entry_id,
        account_id,
        exchange_position_key,
        symbol,
        strategy_a,
        strategy_b,
        {{ window_seconds }} as window_seconds,
        {{ to_int('co_entries') }} as co_entries,
        {{ to_int('positions_a') }} as positions_a,
        {{ to_int('positions_b') }} as positions_b,
        {{ to_int('same_episode_sum') }} as same_episode_co_entries,
        {{ exact_div('gap_ms_sum', 'co_entries * 1000', 18) }} as avg_seconds_apart,
        cast(max_gap_ms as decimal(38, 3)) * cast(0.001 as decimal(4, 3)) as max_seconds_apart,
        {{ ms_to_timestamp('first_ms') }} as first_co_entry_at,
        {{ ms_to_timestamp('last_ms') }} as last_co_entry_at,
        examples
    from grouped
)

select * from final
