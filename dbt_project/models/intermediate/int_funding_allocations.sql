{{ config(
    materialized='incremental',
    incremental_strategy='append' if target.type == 'duckdb' else none,
    on_schema_change='fail',
    pre_hook="{{ delete_affected_funding() }}",
    post_hook=[
        "{{ add_index(['account_id', 'tran_id']) }}",
        "{{ add_index(['strategy_position_id']) }}",
        "{{ clear_affected_funding() }}",
    ],
) }}

-- SPEC §4.4 funding, step 2: each FUNDING_FEE income is shared among its holders
-- (int_funding_holders) pro rata by signed quantity (18 decimals, the last position by id
-- takes the remainder). Funding nobody in the books holds — Binance charges it on a position,
-- so this only happens when the books lack that position, e.g. funding of a key open before
-- the ingested history, ahead of its first ingested fill (SPEC §4.1 opening state) — stays
-- account-level (§4.5): it has no row here and lands in the mart account_pnl.
-- Incremental by funding record: the records int_funding_holders rebuilt this run
-- (macros/incremental_funding.sql).
with holders as (
    select h.* from {{ ref('int_funding_holders') }} as h
    {%- if is_incremental() %}
    inner join (select distinct account_id, tran_id from {{ affected_funding() }}) as a
        on h.account_id = a.account_id and h.tran_id = a.tran_id
    {%- endif %}
),

ranked as (
    select
        *,
        row_number() over (partition by account_id, tran_id order by strategy_position_id desc) as rank_from_last,
        sum(signed_quantity) over (partition by account_id, tran_id) as total_signed
    from holders
),

base as (
    select
        *,
        case
            when total_signed = 0 then null
            else {{ exact_div(qty8('amount') ~ ' * ' ~ qty8('signed_quantity'), qty8('total_signed')) }}
        end as base_share
    from ranked
),

shared as (
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        strategy_position_id,
        {{ remainder_to_last('amount', 'base_share', 'account_id, tran_id') }} as funding_amount
    from base
    where total_signed <> 0
),

final as (
    select
        account_id,
        tran_id,
        symbol,
        income_time_ms,
        {{ id_text('strategy_position_id') }} as strategy_position_id,
        {{ dec18('funding_amount') }} as funding_amount
    from shared
)

select * from final
