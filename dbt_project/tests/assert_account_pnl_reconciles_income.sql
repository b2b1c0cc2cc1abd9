-- SPEC §4.5: per account and asset (natively, nothing converted), what the strategy books hold
-- of the income plus the account-level income equals Σ income of the account, exactly:
--   Σ account_pnl.strategy_income + Σ account_pnl.account_level_income = Σ income records.
-- The right side is read from the staging income, not from the mart. strategy_income comes
-- from the books (allocated fills' realizedPnl and commission, funding and §4.5 shares), so a
-- share that does not add up to its record, an income record attributed twice or lost, or a
-- fill whose realizedPnl/commission disagrees with its ledger line breaks the identity.
-- See the mart's header for the definition (fills from the account's first income record on).
with books as (
    select account_id, asset, sum(strategy_income) as strategy_income, sum(account_level_income) as account_level
    from {{ ref('account_pnl') }}
    group by account_id, asset
),

ledger as (
    select account_id, asset, sum(amount) as income
    from {{ ref('stg_binance__income') }}
    group by account_id, asset
),

compared as (
    select
        coalesce(b.account_id, l.account_id) as account_id,
        coalesce(b.asset, l.asset) as asset,
        coalesce(b.strategy_income, 0) + coalesce(b.account_level, 0) as books,
        coalesce(l.income, 0) as income
    from books as b
    left join ledger as l on b.account_id = l.account_id and b.asset = l.asset
    union all
    select l.account_id, l.asset, 0, l.income
    from ledger as l
    left join books as b on b.account_id = l.account_id and b.asset = l.asset
    where b.asset is null
)

select * from compared
where books <> income
