-- SPEC §3.3 rule 1: explicit link records, each keyed by what it matches. Order ids are per
-- symbol (§3.2): a record by order id matches `order:{SYMBOL}:{id}` on the symbol it names, else
-- on its signal's symbol (a symbol-less record of an unknown signal matches nothing); a record by
-- client order id matches `client:{id}`. When two records claim the same order, one that names its
-- symbol wins over one matched through its signal, then the smallest raw key: deterministic.
{{ config(post_hook="{{ add_index(['account_id', 'match_ref']) }}") }}

with links as (
    select * from {{ ref('stg_signals__order_links') }}
),

signals as (
    select * from {{ ref('stg_signals__signals') }}
),

keyed as (
    select
        l.account_id,
        l.link_ref,
        l.signal_id,
        l.role,
        l.order_id,
        l.client_order_id,
        coalesce(l.symbol, s.symbol) as match_symbol,
        case when l.symbol is not null then 0 else 1 end as by_signal_symbol,
        case
            when l.order_id is null then concat('client:', l.client_order_id)
            when coalesce(l.symbol, s.symbol) is not null
                then concat('order:', coalesce(l.symbol, s.symbol), ':', {{ to_text('l.order_id') }})
        end as match_ref
    from links as l
    left join signals as s
        on l.signal_id = s.signal_id and l.account_id = s.account_id
),

ranked as (
    select
        *,
        row_number() over (
            partition by account_id, match_ref
            order by by_signal_symbol, link_ref
        ) as claim_rank
    from keyed
    where match_ref is not null
),

final as (
    select
        account_id,
        {{ id_text('match_ref') }} as match_ref,
        link_ref,
        signal_id,
        role,
        order_id,
        client_order_id,
        match_symbol
    from ranked
    where claim_rank = 1
)

select * from final
