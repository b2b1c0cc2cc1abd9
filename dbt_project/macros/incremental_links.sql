{#-
  int_order_links_resolved, incremental by order (issue 14): the hour's run resolves again only the
  orders whose SPEC §3.3 link can have changed, never every order of the account.

  Why that is exact. An order's link follows from its own ids only: its client order id (from
  allOrders), the client algo id of the algo order that placed it, the explicit link records that
  match it (`order:{SYMBOL}:{id}` or `client:{id}`, int_order_links_explicit) and whether the
  signals its ids name exist. Links are never made by time or by another order. So an order's row
  can change only when one of these changed:
    1. the order is new (in allOrders or in the fills) or its client order id changed;
    2. the algo order naming it as actualOrderId is new or names another client algo id;
    3. an explicit link record matching it was added, dropped or changed (a later record's claim
       of the same order, a signal that brought the symbol a record without one matches on);
    4. a signal its convention ids (`{signal_id}-{code}`) or its explicit link name appeared or
       changed (the last does not change this row, but the leg's role follows the signal's action,
       and the allocations its strategy, downstream: the row is stamped anew, and consumers re-read
       it).
  1 compares the orders with the stored rows (by key), 2 the algo orders likewise; 1's fills are
  the orders not stored among the legs int_exchange_legs wrote since this table's newest row (a new
  fill of a stored order changes nothing: a link never reads fills); 3 and 4 compare the explicit
  links and the signals as this run finds them (`__links_now`, `__signals_now`) with the copies
  of what the last successful run started from (`__links_seen`, `__signals_seen`) into
  `__changed_links` and `__changed_signals`, and find the stored orders those name through
  indexes. Copying what the run started from, not what it ends with, keeps a signal loaded while
  the run went on new to the next run.

  Nothing is lost when a run fails. The orders to resolve are added to `__pending` and only
  removed by the post-hook, after the copies were renewed: a run that fails keeps them for the
  next one, whose copies are still the old ones. `__rebuilt` keeps what the last run resolved, for
  inspection.
-#}

{#- 3: the explicit link records added, dropped or changed since the copy (`__changed_links`). -#}
{% macro changed_links_sql() -%}
with links_now as (
    select {{ links_seen_columns() }} from {{ side_table('links_now') }}
),

links_before as (
    {%- if side_table_exists('links_seen') %}
    select {{ links_seen_columns() }} from {{ side_table('links_seen') }}
    {%- else %}
    select {{ links_seen_columns() }} from {{ ref('int_order_links_explicit') }} where 1 = 0
    {%- endif %}
)

select * from (select * from links_now except select * from links_before) as added
union
select * from (select * from links_before except select * from links_now) as dropped
{%- endmacro %}

{#- 4: the signals added, dropped or changed since the copy (`__changed_signals`). Raw signals:
    the staging view only renames them, and MariaDB would evaluate it whole. -#}
{% macro changed_signals_sql() -%}
with signals_now as (
    select {{ signals_seen_columns() }} from {{ side_table('signals_now') }}
),

signals_before as (
    {%- if side_table_exists('signals_seen') and signals_seen_is_current() %}
    select {{ signals_seen_columns() }} from {{ side_table('signals_seen') }}
    {%- else %}
    select {{ signals_seen_columns() }} from {{ source('raw', 'signals') }} where 1 = 0
    {%- endif %}
)

select account_id, signal_id from (select * from signals_now except select * from signals_before) as added
union
select account_id, signal_id from (select * from signals_before except select * from signals_now) as dropped
{%- endmacro %}

{#- The orders whose link can have changed since the last successful run (see the header), from
    the stored orders and the side tables `__changed_links` and `__changed_signals`, each evaluated
    once: MariaDB evaluates a CTE once per reference, and drives these joins from the few changed
    rows into the stored orders' indexes. -#}
{% macro links_changes_sql() -%}
with new_orders as (
    select o.account_id, o.symbol, o.order_id
    from {{ ref('stg_binance__orders') }} as o
    left join {{ this }} as s
        on s.account_id = o.account_id and s.symbol = o.symbol and s.order_id = o.order_id
    where s.order_id is null or coalesce(s.client_order_id, '') <> coalesce(o.client_order_id, '')
),

new_fills as (
    -- orders first seen in the fills the legs table wrote since: a new fill of a stored order
    -- changes nothing here (a link never reads fills), and a key's rebuilt episodes restamp
    -- thousands of old fills an hour
    select distinct l.account_id, l.symbol, l.order_id
    from {{ ref('int_exchange_legs') }} as l
    where l.built_ms > {{ newest_build_stamp() }} and l.is_opening = 0
        and not exists (
            select 1 from {{ this }} as s
            where s.account_id = l.account_id and s.symbol = l.symbol and s.order_id = l.order_id
        )
),

new_algo_orders as (
    -- raw keeps one version per algo order (see the model)
    select a.account_id, a.symbol, a.actual_order_id as order_id
    from {{ source('raw', 'futures_algo_orders') }} as a
    left join {{ this }} as s
        on s.account_id = a.account_id and s.symbol = a.symbol and s.order_id = a.actual_order_id
    where a.actual_order_id is not null
        and (s.order_id is null or coalesce(s.client_algo_id, '') <> coalesce(a.client_algo_id, ''))
)

select account_id, symbol, order_id from new_orders
union
select account_id, symbol, order_id from new_fills
union
select account_id, symbol, order_id from new_algo_orders
union
-- 3: a record by order id names its order; one by client id the stored orders with that client
-- order id or client algo id (an order not stored yet is new: 1 or 2)
select account_id, match_symbol, order_id from {{ side_table('changed_links') }} where order_id is not null
union
select s.account_id, s.symbol, s.order_id
from {{ side_table('changed_links') }} as c
{{ straight_join() }} {{ this }} as s on s.account_id = c.account_id and s.client_order_id = c.client_order_id
where c.order_id is null
union
select s.account_id, s.symbol, s.order_id
from {{ side_table('changed_links') }} as c
{{ straight_join() }} {{ this }} as s on s.account_id = c.account_id and s.client_algo_id = c.client_order_id
where c.order_id is null
union
-- 4: the stored orders whose convention ids or link name a changed signal
select s.account_id, s.symbol, s.order_id
from {{ side_table('changed_signals') }} as c
{{ straight_join() }} {{ this }} as s on s.account_id = c.account_id and s.order_signal_id = c.signal_id
union
select s.account_id, s.symbol, s.order_id
from {{ side_table('changed_signals') }} as c
{{ straight_join() }} {{ this }} as s on s.account_id = c.account_id and s.algo_signal_id = c.signal_id
union
select s.account_id, s.symbol, s.order_id
from {{ side_table('changed_signals') }} as c
{{ straight_join() }} {{ this }} as s on s.account_id = c.account_id and s.strategy_position_id = c.signal_id
{%- endmacro %}

{#- The signal columns a link or a downstream incremental model reads: the action (and the side it
    implies), the strategy (fct_fill_allocations, position_contributions) and the symbol. -#}
{% macro signals_seen_columns() -%}
    account_id, signal_id, action, strategy_id, symbol
{%- endmacro %}

{#- Whether the stored copy has every compared column: a copy from a version that compared fewer
    counts as missing, so every signal is new to this run once. -#}
{% macro signals_seen_is_current() -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation = side_table('signals_seen') -%}
    {%- set found = run_query(
        "select count(*) from information_schema.columns where table_schema = '" ~ relation.schema
        ~ "' and table_name = '" ~ relation.identifier ~ "' and column_name in ('strategy_id', 'symbol')"
    ) -%}
    {{ return(found.rows[0][0] | int == 2) }}
{%- endmacro %}

{% macro links_seen_columns() -%}
    account_id, match_ref, signal_id, role, order_id, client_order_id, match_symbol
{%- endmacro %}

{#- Pre-hook: add the orders to resolve to `__pending` (created empty on the first incremental run;
    what a failed run left there stays). A full refresh resolves every order: it drops the table. -#}
{% macro add_pending_links() -%}
    {%- if is_incremental() -%}
    {%- set pending = side_table('pending') -%}
    {%- if execute -%}
        {%- do take_links_now() -%}
        {%- for name, sql in [('changed_links', changed_links_sql()), ('changed_signals', changed_signals_sql())] -%}
            {%- do run_query('drop table if exists ' ~ side_table(name)) -%}
            {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ side_table(name) ~ ' as ' ~ sql) -%}
        {%- endfor -%}
        {%- do run_query(
            stratpos_statement_settings() ~ ' create table if not exists ' ~ pending
            ~ ' as select account_id, symbol, order_id from ' ~ this ~ ' where 1 = 0'
        ) -%}
    {%- endif -%}
    {{ stratpos_statement_settings() }} insert into {{ pending }} (account_id, symbol, order_id)
    {{ links_changes_sql() }}
    {%- else -%}
    {%- if execute -%}
        {%- do take_links_now() -%}
    {%- endif -%}
    drop table if exists {{ side_table('pending') }}
    {%- endif -%}
{%- endmacro %}

{#- The explicit links and signals as this run found them before resolving (`__links_now`,
    `__signals_now`): the post-hook keeps these as the copies, so a signal loaded while the run
    went on is new to the next run instead of being copied unseen. -#}
{% macro take_links_now() -%}
    {%- set sources = [
        ('links_now', 'select ' ~ links_seen_columns() ~ ' from ' ~ ref('int_order_links_explicit')),
        ('signals_now', 'select ' ~ signals_seen_columns() ~ ' from ' ~ source('raw', 'signals')),
    ] -%}
    {%- for name, sql in sources -%}
        {%- do run_query('drop table if exists ' ~ side_table(name)) -%}
        {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ side_table(name) ~ ' as ' ~ sql) -%}
    {%- endfor -%}
{%- endmacro %}

{#- Post-hooks, in order: the copies of the explicit links and the signals this run started from
    (`__links_now`, `__signals_now`), what it resolved (`__rebuilt`), then `__pending` emptied. -#}
{% macro renew_links_seen() -%}
    {%- set statements = [
        'drop table if exists ' ~ side_table('links_seen'),
        stratpos_statement_settings() ~ ' create table ' ~ side_table('links_seen') ~ ' as select * from '
            ~ side_table('links_now'),
        'drop table if exists ' ~ side_table('signals_seen'),
        stratpos_statement_settings() ~ ' create table ' ~ side_table('signals_seen') ~ ' as select * from '
            ~ side_table('signals_now'),
        'drop table if exists ' ~ side_table('rebuilt'),
    ] -%}
    {#- a full refresh resolved every order: nothing was pending, `__rebuilt` is empty -#}
    {%- do statements.append(
        stratpos_statement_settings() ~ ' create table if not exists ' ~ side_table('pending')
        ~ ' as select account_id, symbol, order_id from ' ~ this ~ ' where 1 = 0'
    ) -%}
    {%- do statements.append(
        stratpos_statement_settings() ~ ' create table ' ~ side_table('rebuilt')
        ~ ' as select distinct account_id, symbol, order_id from ' ~ side_table('pending')
    ) -%}
    {%- do statements.append('drop table if exists ' ~ side_table('pending')) -%}
    {%- if execute -%}
    {%- for statement in statements -%}
        {%- do run_query(statement) -%}
    {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#-
  int_legs_linked, incremental by leg. A leg's row follows from the leg (int_exchange_legs), its
  order's link (int_order_links_resolved, whose rows are stamped anew when the link or the signal
  it names changed) and the account's position mode. So a run rebuilds, per key, the episodes the
  legs table rebuilt since this table's newest row (`consumer_rebuild_plan_sql`, as the average
  walk), plus every key of an account whose position mode changed since the copy the last
  successful run took (`__accounts_seen`).
-#}
{% macro legs_linked_plan_sql() -%}
with suffixes as (
    {{ consumer_rebuild_plan_sql(ref('int_exchange_legs')) }}
),

accounts_now as (
    select account_id, position_mode from {{ side_table('accounts_now') }}
),

accounts_before as (
    {%- if side_table_exists('accounts_seen') %}
    select account_id, position_mode from {{ side_table('accounts_seen') }}
    {%- else %}
    select account_id, position_mode from {{ ref('stg_binance__accounts') }} where 1 = 0
    {%- endif %}
),

changed_accounts as (
    select account_id from (select * from accounts_now except select * from accounts_before) as added
    union
    select account_id from (select * from accounts_before except select * from accounts_now) as dropped
),

planned as (
    -- a stored key the legs no longer have is in `suffixes` already (from episode 0)
    select account_id, exchange_position_key, from_episode_no from suffixes
    union all
    select distinct l.account_id, l.exchange_position_key, 0 as from_episode_no
    from {{ ref('int_exchange_legs') }} as l
    inner join changed_accounts as c on l.account_id = c.account_id
)

select account_id, exchange_position_key, min(from_episode_no) as from_episode_no
from planned
group by account_id, exchange_position_key
{%- endmacro %}

{#- The legs to rebuild (`__legs`): the planned episodes' legs, and the stored legs of the orders
    int_order_links_resolved wrote since this table's newest row. -#}
{% macro legs_linked_legs_sql() -%}
select l.leg_id
from {{ side_table('plan') }} as p
{{ straight_join() }} {{ ref('int_exchange_legs') }} as l
    on l.account_id = p.account_id
    and l.exchange_position_key = p.exchange_position_key
    and l.episode_no >= p.from_episode_no
union
select s.leg_id
from {{ ref('int_order_links_resolved') }} as k
{{ straight_join() }} {{ this }} as s
    on s.account_id = k.account_id and s.symbol = k.symbol and s.order_id = k.order_id
where k.built_ms > {{ newest_build_stamp() }}
{%- endmacro %}

{#- Pre-hook: the accounts' position modes as this run found them (`__accounts_now`), which the
    post-hook keeps as the copy: a mode loaded while the run went on is new to the next run. -#}
{% macro take_accounts_now() -%}
    {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ side_table('accounts_now')) -%}
    {%- do run_query(
        stratpos_statement_settings() ~ ' create table ' ~ side_table('accounts_now')
        ~ ' as select account_id, position_mode from ' ~ ref('stg_binance__accounts')
    ) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- Post-hook: the copy of the accounts' position modes this run started from. -#}
{% macro renew_accounts_seen() -%}
    {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ side_table('accounts_seen')) -%}
    {%- do run_query(
        stratpos_statement_settings() ~ ' create table ' ~ side_table('accounts_seen')
        ~ ' as select account_id, position_mode from ' ~ side_table('accounts_now')
    ) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
