{#-
  The allocation chain, incremental by scope (issue 14): int_position_episodes, int_exit_allocations,
  int_fill_allocations_linked, int_episode_reallocations, int_fill_allocations,
  int_holding_intervals and fct_fill_allocations (the last, so that its record of completion
  covers the others) rebuild, each hour, only the episodes and strategy positions of
  int_allocation_scope, never the whole history.

  Why a scope is exact. Join every strategy position to the episodes its legs are in: the
  connected components of that graph are closed under everything an allocation row reads. A leg's
  rows read its position's legs (the cap of its exits, the episode of its first entry), its
  episode's bucket, and at a hedge episode's end the pool of that episode and the positions that
  entered in it, all of which are in the leg's component. So the scope is every component holding
  a changed leg: the episodes of the legs int_legs_linked wrote since the chain last completed,
  the episodes of a changed key that no longer exist (a late fill merged two), then, until nothing
  is added, the positions with a leg in a scope episode and the episodes of the scope positions'
  legs — as they are now (int_legs_linked) and as the chain stored them (int_fill_allocations_linked,
  read without a ref: it is built after the scope), so a leg that moved from one position to
  another takes both with it.

  Side tables of int_allocation_scope: `__since` (the watermark used, and the newest stamp of
  int_legs_linked it covers), `__episodes` and `__positions` (the components, built by the
  pre-hook), and `__done`, which fct_fill_allocations' post-hook sets to `__since.upto_ms` once the
  chain completed. A run that fails anywhere in the chain leaves `__done` as it was: the next
  scope covers what that run did not finish.
-#}

{#- The chain's stored allocations (int_fill_allocations_linked), found without a ref. -#}
{% macro stored_allocations() -%}
    {%- set relation = adapter.get_relation(this.database, this.schema, 'int_fill_allocations_linked') -%}
    {{ return(relation) }}
{%- endmacro %}

{#- Pre-hook of int_allocation_scope: `__since`, then `__episodes` and `__positions` grown to the
    components of the changed legs (see the header). -#}
{% macro build_allocation_scope() -%}
    {%- if execute -%}
    {%- set legs = ref('int_legs_linked') -%}
    {%- set stored = stored_allocations() -%}
    {%- set done = side_table('done') -%}
    {%- set have_done = side_table_exists('done') -%}
    {%- set prefix = stratpos_statement_settings() -%}
    {%- for name in ['since', 'episodes', 'positions'] -%}
        {%- do run_query('drop table if exists ' ~ side_table(name)) -%}
    {%- endfor -%}
    {#- a full refresh rebuilds the whole chain: no scope. Without a record of the last completed
        chain (a first run after an upgrade) every episode is in it. -#}
    {%- set mode = 'none' if flags.FULL_REFRESH or stored is none else ('changed' if have_done else 'all') -%}
    {%- set since_ms = run_query('select coalesce(max(done_ms), -1) from ' ~ done).rows[0][0] | int if mode == 'changed' else -1 -%}
    {%- do run_query(prefix ~ ' create table ' ~ side_table('since') ~ ' as select ' ~ to_int(since_ms) ~ ' as since_ms, '
        ~ '(select coalesce(max(built_ms), -1) from ' ~ legs ~ ') as upto_ms') -%}
    {%- set seeds -%}
        {%- if mode == 'changed' %}
        select distinct exchange_position_id as node_id from {{ legs }} where built_ms > {{ since_ms }}
        union
        -- episodes of a changed key beyond its last one now (a late fill merged two)
        select distinct f.exchange_position_id
        from (
            select
                k.account_id,
                k.exchange_position_key,
                (
                    select max(l.episode_no) from {{ legs }} as l
                    where l.account_id = k.account_id and l.exchange_position_key = k.exchange_position_key
                ) as last_episode_no
            from (select distinct account_id, exchange_position_key from {{ legs }} where built_ms > {{ since_ms }}) as k
        ) as k
        {{ straight_join() }} {{ stored }} as f
            on f.account_id = k.account_id
            and f.exchange_position_key = k.exchange_position_key
            and f.episode_no > k.last_episode_no
        {%- elif mode == 'all' %}
        select distinct exchange_position_id as node_id from {{ legs }}
        union
        select distinct exchange_position_id from {{ stored }}
        {%- else %}
        select exchange_position_id as node_id from {{ legs }} where 1 = 0
        {%- endif %}
    {%- endset -%}
    {%- do run_query(prefix ~ ' create table ' ~ side_table('episodes') ~ ' as ' ~ seeds) -%}
    {%- do run_query(prefix ~ ' create table ' ~ side_table('positions') ~ ' as select strategy_position_id as node_id from '
        ~ legs ~ ' where 1 = 0') -%}
    {%- do run_query(add_index(['node_id'], side_table('episodes'))) -%}
    {%- do run_query(add_index(['node_id'], side_table('positions'))) -%}
    {%- set sources = [legs] + ([stored] if stored is not none else []) -%}
    {%- set ns = namespace(size=-1, converged=(mode == 'none')) -%}
    {%- for round in range(50) if not ns.converged -%}
        {%- for source in sources -%}
            {%- do run_query(prefix ~ ' insert into ' ~ side_table('positions') ~ ' (node_id) '
                ~ 'select distinct s.strategy_position_id from ' ~ side_table('episodes') ~ ' as e '
                ~ straight_join() ~ ' ' ~ source ~ ' as s on s.exchange_position_id = e.node_id '
                ~ "where s.strategy_position_id is not null and s.strategy_position_id not like 'unattributed:%' "
                ~ 'and not exists (select 1 from ' ~ side_table('positions') ~ ' as p where p.node_id = s.strategy_position_id)') -%}
        {%- endfor -%}
        {%- for source in sources -%}
            {%- do run_query(prefix ~ ' insert into ' ~ side_table('episodes') ~ ' (node_id) '
                ~ 'select distinct s.exchange_position_id from ' ~ side_table('positions') ~ ' as p '
                ~ straight_join() ~ ' ' ~ source ~ ' as s on s.strategy_position_id = p.node_id '
                ~ 'where not exists (select 1 from ' ~ side_table('episodes') ~ ' as e where e.node_id = s.exchange_position_id)') -%}
        {%- endfor -%}
        {%- set size = run_query('select (select count(*) from ' ~ side_table('episodes') ~ ') + (select count(*) from '
            ~ side_table('positions') ~ ')').rows[0][0] | int -%}
        {%- if size == ns.size -%}
            {%- set ns.converged = true -%}
        {%- endif -%}
        {%- set ns.size = size -%}
    {%- endfor -%}
    {%- if not ns.converged -%}
        {%- do exceptions.raise_compiler_error(
            "int_allocation_scope: the changed legs' components did not close in 50 rounds; run `stratpos transform --full-refresh`"
        ) -%}
    {%- endif -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- In a chain model's select: keep the rows whose `column` is a scope node of `node_type`
    (`episode` or `position`) on an incremental run; everything on a full refresh. -#}
{% macro in_allocation_scope(column, node_type='episode') -%}
    {%- if is_incremental() %}
    inner join {{ ref('int_allocation_scope') }} as scope
        on scope.node_type = '{{ node_type }}' and scope.node_id = {{ column }}
    {%- endif -%}
{%- endmacro %}

{#- A chain model's pre-hook: delete its rows whose `column` is a scope node of `node_type`. -#}
{% macro delete_allocation_scope(column, node_type='episode') -%}
    {%- if is_incremental() -%}
    {{ return(adapter.dispatch('delete_allocation_scope', 'stratpos')(column, node_type)) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- no table aliases: MariaDB resolves a multi-table DELETE's aliases in the default database -#}
{% macro default__delete_allocation_scope(column, node_type) -%}
    {%- set scope = ref('int_allocation_scope') -%}
    delete {{ this }} from {{ this }}
    inner join {{ scope }} on {{ scope }}.node_type = '{{ node_type }}' and {{ scope }}.node_id = {{ this }}.{{ column }}
{%- endmacro %}

{% macro duckdb__delete_allocation_scope(column, node_type) -%}
    delete from {{ this }}
    where {{ column }} in (select node_id from {{ ref('int_allocation_scope') }} where node_type = '{{ node_type }}')
{%- endmacro %}

{#- fct_fill_allocations' post-hook: the chain completed up to the scope's `upto_ms`. -#}
{% macro mark_allocations_done() -%}
    {%- set done = model_side_table('int_allocation_scope', 'done') -%}
    {%- set since = model_side_table('int_allocation_scope', 'since') -%}
    {%- if execute -%}
    {%- do run_query('drop table if exists ' ~ done) -%}
    {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ done ~ ' as select upto_ms as done_ms from ' ~ since) -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#-
  Models after the chain that are incremental by the same scope (position_contributions). Such a
  model is exact by scope only if it consumed every scope since the one it last completed: its
  post-hook `mark_scope_consumed()` records the scope's `upto_ms` in `int_allocation_scope__done_<model>`
  (beside the scope, not in the marts), and a run
  whose scope starts from that mark (`__since.since_ms`) rebuilds the scope; any other run — the
  model was left out of a run, failed, or the scope covers everything — rebuilds it whole.
-#}

{#- Where this consumer records the scope it consumed. -#}
{% macro consumer_done_table() -%}
    {{ return(model_side_table('int_allocation_scope', 'done_' ~ this.identifier)) }}
{%- endmacro %}

{#- 'scope' or 'all': what this consumer rebuilds this run (see above). -#}
{% macro scope_consumer_mode() -%}
    {%- if not is_incremental() or not execute -%}
        {{ return('all') }}
    {%- endif -%}
    {%- set since = model_side_table('int_allocation_scope', 'since') -%}
    {%- set done = consumer_done_table() -%}
    {%- if not relation_exists(since) or not relation_exists(done) -%}
        {{ return('all') }}
    {%- endif -%}
    {%- set row = run_query('select (select max(since_ms) from ' ~ since ~ '), (select max(done_ms) from ' ~ done ~ ')').rows[0] -%}
    {%- if row[0] is none or row[1] is none or (row[0] | int) < 0 or (row[0] | int) != (row[1] | int) -%}
        {{ return('all') }}
    {%- endif -%}
    {{ return('scope') }}
{%- endmacro %}

{#- A consumer's pre-hook: delete its rows of the scope's nodes, or all of them. -#}
{% macro delete_consumer_scope(column, node_type='episode') -%}
    {%- if is_incremental() and scope_consumer_mode() == 'all' -%}
    delete from {{ this }}
    {%- else -%}
    {{ delete_allocation_scope(column, node_type) }}
    {%- endif -%}
{%- endmacro %}

{#- In a consumer's select: the scope join when it rebuilds the scope. -#}
{% macro in_consumer_scope(column, node_type='episode') -%}
    {%- if scope_consumer_mode() == 'scope' -%}
    {{ in_allocation_scope(column, node_type) }}
    {%- endif -%}
{%- endmacro %}

{#- A consumer's post-hook: it consumed the scope up to `__since.upto_ms`, rebuilding the scope
    or everything (`rebuilt`, for inspection). -#}
{% macro mark_scope_consumed() -%}
    {%- if execute -%}
    {%- set since = model_side_table('int_allocation_scope', 'since') -%}
    {%- set mode = scope_consumer_mode() -%}
    {%- do run_query('drop table if exists ' ~ consumer_done_table()) -%}
    {%- do run_query(stratpos_statement_settings() ~ ' create table ' ~ consumer_done_table()
        ~ " as select upto_ms as done_ms, '" ~ mode ~ "' as rebuilt from " ~ since) -%}
    {%- endif -%}
    select 1
{%- endmacro %}
