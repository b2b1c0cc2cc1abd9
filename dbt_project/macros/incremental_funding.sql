{#-
  Funding, incremental by funding event (issue 14): each hour int_funding_holders and
  int_funding_allocations rewrite only the FUNDING_FEE records whose holders can have changed,
  never every funding record against every holding of the account.

  Why that is exact. A record's holders are the intervals of int_holding_intervals of its account
  and symbol that cover its time. So its rows can change only when
    1. the record itself is new, changed or gone (the records as this run finds them, in
       `int_funding_holders__events_now`, against the copy of what the last run started from,
       `__events_seen`), or
    2. an interval covering its time was removed or added. int_holding_intervals rewrites the
       allocation scope's positions and buckets; its pre-hook keeps their stored intervals
       (`int_holding_intervals__old`) and its post-hook compares them with the new ones into
       `int_holding_intervals__touched`: per account and symbol, the time ranges in which some
       holding changed. An interval that only ended elsewhere (an open interval a new fill
       closed) touches only the time between its old and its new end.
  The records so found go to `int_funding_holders__affected`; int_funding_holders deletes and
  rebuilds their rows, looking each up in the intervals' (account, symbol, until_ms) index, and
  int_funding_allocations does the same with their shares.

  Nothing is lost when a run fails. `__old` keeps the first stored version of each position until
  a post-hook compared it; `__touched` is emptied only once its ranges are in `__affected`, and
  `__affected` only by int_funding_allocations' post-hook, so a run that fails anywhere between
  leaves the next one to rebuild those records too. A full refresh of int_holding_intervals
  touches every symbol it held before or holds after; one of int_funding_holders affects every
  record.
-#}

{#- An open interval's end: later than any time (ms). -#}
{% macro holding_open_until_ms() -%}
    9223372036854775807
{%- endmacro %}

{% macro holding_diff_columns() -%}
    strategy_position_id, account_id, symbol, direction, from_ms, until_ms, open_quantity
{%- endmacro %}

{#- int_holding_intervals' first pre-hook. Incremental: keep the stored intervals of the scope's
    positions and buckets in `__old` (those of a position a failed run left there stay: they are
    what the last comparison saw). Otherwise: every symbol the stored table holds (and a failed
    run's `__old` names) is touched whole. -#}
{% macro save_old_holdings() -%}
    {%- if execute -%}
    {%- set prefix = stratpos_statement_settings() -%}
    {%- set old = side_table('old') -%}
    {%- set touched = side_table('touched') -%}
    {%- set stored = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {%- if is_incremental() -%}
        {%- set scope = ref('int_allocation_scope') -%}
        {%- do run_query(prefix ~ ' create table if not exists ' ~ old ~ ' as select ' ~ holding_diff_columns()
            ~ ' from ' ~ this ~ ' where 1 = 0') -%}
        {%- do run_query(add_index(['strategy_position_id', 'from_ms'], old)) -%}
        {%- do run_query(prefix ~ ' insert into ' ~ old ~ ' (' ~ holding_diff_columns() ~ ') select '
            ~ holding_diff_columns() ~ ' from ' ~ this ~ ' as t where (t.strategy_position_id in (select node_id from '
            ~ scope ~ " where node_type = 'position') or t.bucket_episode_id in (select node_id from " ~ scope
            ~ " where node_type = 'episode')) and not exists (select 1 from " ~ old
            ~ ' as o where o.strategy_position_id = t.strategy_position_id)') -%}
    {%- elif stored is not none -%}
        {%- do run_query(prefix ~ ' create table if not exists ' ~ touched ~ ' as select account_id, symbol, from_ms, until_ms from '
            ~ stored ~ ' where 1 = 0') -%}
        {%- set whole = ', -1, ' ~ holding_open_until_ms() -%}
        {%- do run_query(prefix ~ ' insert into ' ~ touched ~ ' (account_id, symbol, from_ms, until_ms) select distinct account_id, symbol'
            ~ whole ~ ' from ' ~ stored) -%}
        {%- if relation_exists(old) -%}
            {%- do run_query(prefix ~ ' insert into ' ~ touched ~ ' (account_id, symbol, from_ms, until_ms) select distinct account_id, symbol'
                ~ whole ~ ' from ' ~ old) -%}
        {%- endif -%}
    {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- int_holding_intervals' last post-hook: the time ranges whose holdings changed, per account and
    symbol, added to `__touched`; then `__old` is dropped. An old interval that a new one of the
    same position, start, quantity and direction replaced touches the time between their ends;
    any other old or new interval its whole range. -#}
{% macro record_touched_holdings() -%}
    {%- if execute -%}
    {%- set prefix = stratpos_statement_settings() -%}
    {%- set old = side_table('old') -%}
    {%- set touched = side_table('touched') -%}
    {%- set scope = ref('int_allocation_scope') -%}
    {%- do run_query(prefix ~ ' create table if not exists ' ~ touched ~ ' as select account_id, symbol, from_ms, until_ms from '
        ~ this ~ ' where 1 = 0') -%}
    {%- if is_incremental() -%}
        {%- set changed -%}
        select
            o.account_id,
            o.symbol,
            case when n.strategy_position_id is null then o.from_ms
                when n.until_ms < o.until_ms then n.until_ms else o.until_ms end as from_ms,
            case when n.strategy_position_id is null or n.until_ms < o.until_ms then o.until_ms
                else n.until_ms end as until_ms
        from {{ old }} as o
        left join {{ this }} as n
            on n.strategy_position_id = o.strategy_position_id
            and n.from_ms = o.from_ms
            and n.open_quantity = o.open_quantity
            and n.direction = o.direction
        where n.strategy_position_id is null or n.until_ms <> o.until_ms
        union all
        select n.account_id, n.symbol, n.from_ms, n.until_ms
        from {{ this }} as n
        where (
                n.strategy_position_id in (select node_id from {{ scope }} where node_type = 'position')
                or n.bucket_episode_id in (select node_id from {{ scope }} where node_type = 'episode')
            )
            and not exists (
                select 1 from {{ old }} as o
                where o.strategy_position_id = n.strategy_position_id
                    and o.from_ms = n.from_ms
                    and o.open_quantity = n.open_quantity
                    and o.direction = n.direction
            )
        {%- endset -%}
        {%- do run_query(prefix ~ ' insert into ' ~ touched ~ ' (account_id, symbol, from_ms, until_ms) ' ~ changed) -%}
    {%- else -%}
        {%- do run_query(prefix ~ ' insert into ' ~ touched ~ ' (account_id, symbol, from_ms, until_ms) select distinct account_id, symbol, -1, '
            ~ holding_open_until_ms() ~ ' from ' ~ this) -%}
    {%- endif -%}
    {%- do run_query('drop table if exists ' ~ old) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- int_funding_holders' pre-hook: the FUNDING_FEE records as this run finds them (`__events_now`),
    the records whose holders can have changed added to `__affected` (all of them on a full
    refresh), the intervals' `__touched` emptied, and on an incremental run the affected records'
    rows deleted. -#}
{% macro add_affected_funding() -%}
    {%- if execute -%}
    {%- set prefix = stratpos_statement_settings() -%}
    {%- set now = side_table('events_now') -%}
    {%- set seen = side_table('events_seen') -%}
    {%- set affected = side_table('affected') -%}
    {%- set touched = model_side_table('int_holding_intervals', 'touched') -%}
    {%- set columns = 'account_id, tran_id, symbol, income_time_ms, amount' -%}
    {%- do run_query('drop table if exists ' ~ now) -%}
    {%- do run_query(prefix ~ ' create table ' ~ now ~ ' as select ' ~ columns ~ ' from ' ~ ref('stg_binance__income')
        ~ " where income_type = 'FUNDING_FEE'") -%}
    {%- do run_query(add_index(['account_id', 'symbol', 'income_time_ms'], now)) -%}
    {%- do run_query(prefix ~ ' create table if not exists ' ~ affected ~ ' as select account_id, tran_id from ' ~ now ~ ' where 1 = 0') -%}
    {%- set have_seen = relation_exists(seen) -%}
    {%- set have_touched = relation_exists(touched) -%}
    {%- if is_incremental() -%}
        {%- set changed -%}
        {%- if have_seen %}
        select account_id, tran_id from (select {{ columns }} from {{ now }} except select {{ columns }} from {{ seen }}) as added
        union
        select account_id, tran_id from (select {{ columns }} from {{ seen }} except select {{ columns }} from {{ now }}) as dropped
        {%- else %}
        select account_id, tran_id from {{ now }}
        {%- endif -%}
        {%- if have_touched %}
        union
        select e.account_id, e.tran_id
        from {{ touched }} as t
        {{ straight_join() }} {{ now }} as e
            on e.account_id = t.account_id
            and e.symbol = t.symbol
            and e.income_time_ms >= t.from_ms
            and e.income_time_ms < t.until_ms
        {%- endif %}
        {%- endset -%}
    {%- else -%}
        {%- set changed -%}
        select account_id, tran_id from {{ now }}
        {%- if have_seen %}
        union
        select account_id, tran_id from {{ seen }}
        {%- endif %}
        {%- endset -%}
    {%- endif -%}
    {%- do run_query(prefix ~ ' insert into ' ~ affected ~ ' (account_id, tran_id) ' ~ changed) -%}
    {%- do run_query(add_index(['account_id', 'tran_id'], affected)) -%}
    {%- if have_touched -%}
        {%- do run_query('delete from ' ~ touched) -%}
    {%- endif -%}
    {%- endif -%}
    {{ delete_affected_funding(side_table('affected')) }}
{%- endmacro %}

{#- int_funding_holders' post-hook: the records this run started from become the copy. -#}
{% macro renew_funding_seen() -%}
    {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ side_table('events_seen')) -%}
    {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ side_table('events_seen')
        ~ ' as select * from ' ~ side_table('events_now')) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- The affected funding records of int_funding_holders, for a consumer's select. -#}
{% macro affected_funding() -%}
    {{ return(model_side_table('int_funding_holders', 'affected')) }}
{%- endmacro %}

{#- A pre-hook: on an incremental run, delete the rows of the affected records. -#}
{% macro delete_affected_funding(affected=none) -%}
    {%- if is_incremental() -%}
    {{ return(adapter.dispatch('delete_affected_funding', 'stratpos')(affected if affected is not none else affected_funding())) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- no table aliases: MariaDB resolves a multi-table DELETE's aliases in the default database -#}
{% macro default__delete_affected_funding(affected) -%}
    delete {{ this }} from {{ this }}
    inner join {{ affected }}
        on {{ affected }}.account_id = {{ this }}.account_id and {{ affected }}.tran_id = {{ this }}.tran_id
{%- endmacro %}

{% macro duckdb__delete_affected_funding(affected) -%}
    delete from {{ this }}
    using {{ affected }} as a
    where {{ this }}.account_id = a.account_id and {{ this }}.tran_id = a.tran_id
{%- endmacro %}

{#- int_funding_allocations' post-hook: the affected records are rebuilt; int_funding_holders'
    `__rebuilt` keeps which, for inspection. -#}
{% macro clear_affected_funding() -%}
    {%- set affected = affected_funding() -%}
    {%- set rebuilt = model_side_table('int_funding_holders', 'rebuilt') -%}
    {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ rebuilt) -%}
    {%- if relation_exists(affected) -%}
        {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ rebuilt
            ~ ' as select distinct account_id, tran_id from ' ~ affected) -%}
    {%- endif -%}
    {%- do run_query('drop table if exists ' ~ affected) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
