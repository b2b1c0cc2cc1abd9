{#-
  int_exchange_legs, incremental by key suffix (issue 14): the hour's run rebuilds, for each key
  that got new fills, only its episodes from the one the earliest new fill lands in, never the
  key's whole history.

  Why a suffix is exact. Legs follow from the key's fills in (time, trade id) order through a
  running quantity. Every fill before the earliest new one is unchanged, so is every leg before
  it; an episode that ended before the earliest new fill is unchanged too. Let D be the first
  episode holding a leg after the earliest new fill (or the key's open episode, or a new one if
  all are closed): episodes 1 … D−1 are kept as they are, D and everything after are deleted and
  rebuilt from the fill B that closed episode D−1, starting from the quantity before B (its
  leg_qty_before) and numbering episodes on from D−1. B's closing leg is kept, not rebuilt; when
  B crossed zero (one-way mode) its second leg opens episode D and is rebuilt.

  A key is rebuilt whole when its opening state changed (int_opening_states differs from the
  stored opening leg: a newer snapshot, a fill before the first one), when D would be its first
  episode, or when nothing of it is stored yet.

  The pre-hooks, in order, each writing a side table (`side_table()`, beside the model, kept for
  inspection until the next run): `legs_changes_sql()` the new or edited fills into
  `<model>__changes`; `legs_rebuild_plan_sql()` one row per key to rebuild into `<model>__plan`
  (D as `from_episode_no`, and B); `legs_rebuild_fills_sql()` the fills a partial rebuild re-reads
  into `<model>__fills`; then `delete_planned_suffix()` deletes what the plan rebuilds. The model's
  select reads the plan and the fills.

  Where the rebuild starts is found from the stored leg just before the earliest change (D is its
  episode if that goes on past it, else the next): the first stored episode with a leg after the
  change is the same D, since every episode before D ends before the change.

  New fills are the ones whose leg 1 the table does not hold as they are now (a fill edited in
  place in raw counts from the earlier of its old and new time), so a run that failed after
  ingestion loses nothing: its fills are still new to the next run. A fill deleted from raw is
  not seen (the raw layer only grows; after deleting by hand, run a full refresh).
-#}

{#- A side table of the model (`<model>__<name>`): `plan` (what the last run rebuilt, per key),
    `changes`, `fills`. The changes are a table of their own so that the plan's lookups run over
    these few rows (MariaDB flattened them into the join over every fill and ran them per row of
    it) and the join over every fill runs once. -#}
{% macro side_table(name) -%}
    {{ return(side_table_of(this, name)) }}
{%- endmacro %}

{#- The side table of another model (`<model>__<name>`), found through its ref. -#}
{% macro model_side_table(model, name) -%}
    {{ return(side_table_of(ref(model), name)) }}
{%- endmacro %}

{% macro side_table_of(relation, name) -%}
    {{ return(relation.incorporate(path={"identifier": relation.identifier ~ '__' ~ name})) }}
{%- endmacro %}

{#- Whether the side table exists. -#}
{% macro side_table_exists(name) -%}
    {{ return(relation_exists(side_table(name))) }}
{%- endmacro %}

{#- Whether a table exists now: asked of the warehouse, not of dbt's relation cache, which does
    not know the side tables another model's hooks created during this run. -#}
{% macro relation_exists(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) from information_schema.tables where table_schema = '" ~ relation.schema
        ~ "' and table_name = '" ~ relation.identifier ~ "'"
    ) -%}
    {{ return(found.rows[0][0] | int > 0) }}
{%- endmacro %}

{#- A pre-hook, after `drop table if exists {{ side_table(name) }}`: the side table from `sql` on an
    incremental run, nothing on a full refresh. -#}
{% macro create_side_table(name, sql) -%}
    {%- if is_incremental() -%}
    {{ stratpos_statement_settings() }} create table {{ side_table(name) }} as
    {{ sql }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{% macro legs_changes_sql() -%}
-- every fill whose leg 1 the table does not hold as it is now: a new fill, or one changed in place
-- (by hand: ingestion quarantines a changed payload); a changed fill also touches where it stood
select
    t.account_id,
    t.symbol,
    t.position_side,
    t.exchange_position_key,
    s.position_side as stored_position_side,
    s.exchange_position_key as stored_key,
    case when s.trade_time_ms < t.trade_time_ms then s.trade_time_ms else t.trade_time_ms end as trade_time_ms,
    t.trade_id
from {{ ref('stg_binance__trades') }} as t
left join {{ this }} as s
    on s.account_id = t.account_id and s.symbol = t.symbol and s.trade_id = t.trade_id and s.leg_no = 1
where s.leg_id is null
    or s.exchange_position_key <> t.exchange_position_key
    or s.trade_time_ms <> t.trade_time_ms
    or s.order_id <> t.order_id
    or s.side <> t.side
    or s.price <> t.price
    or s.fill_quantity <> t.quantity
    or s.fill_realized_pnl <> t.realized_pnl
    or s.fill_commission <> t.commission
    or coalesce(s.commission_asset, '') <> coalesce(t.commission_asset, '')
{%- endmacro %}

{#- Per changed key, lookups that each read a few index entries on MariaDB (LIMIT 1 along the
    (key, time, trade id, leg) or (key, episode, leg_seq) index): the plan costs the changed keys'
    recent legs, not their history. The stored leg just before the earliest change says where
    the rebuild starts: its episode D if that goes on past it, else D + 1. -#}
{% macro legs_rebuild_plan_sql() -%}
with touched as (
    select account_id, symbol, position_side, exchange_position_key, trade_time_ms, trade_id
    from {{ side_table('changes') }}
    union all
    select account_id, symbol, stored_position_side, stored_key, trade_time_ms, trade_id
    from {{ side_table('changes') }}
    where stored_key <> exchange_position_key
),

ranked as (
    select
        *,
        row_number() over (
            partition by account_id, exchange_position_key order by trade_time_ms, trade_id
        ) as rn
    from touched
),

openings as (
    select
        account_id,
        symbol,
        position_side,
        exchange_position_key,
        {{ dec18('opening_quantity') }} as quantity,
        {{ dec18('opening_price') }} as price,
        opening_time_ms as time_ms
    from {{ ref('int_opening_states') }}
),

stored_openings as (
    select
        account_id,
        symbol,
        position_side,
        exchange_position_key,
        {{ dec18('leg_qty_after') }} as quantity,
        {{ dec18('price') }} as price,
        trade_time_ms as time_ms
    from {{ this }}
    where is_opening = 1
),

opening_changed as (
    select account_id, symbol, position_side, exchange_position_key from (
        select * from openings
        except
        select * from stored_openings
    ) as added
    union
    select account_id, symbol, position_side, exchange_position_key from (
        select * from stored_openings
        except
        select * from openings
    ) as removed
),

changed_keys as (
    select account_id, symbol, position_side, exchange_position_key from ranked where rn = 1
    union
    select account_id, symbol, position_side, exchange_position_key from opening_changed
),

changed as (
    select
        k.account_id,
        k.symbol,
        k.position_side,
        k.exchange_position_key,
        r.trade_time_ms as first_time_ms,
        r.trade_id as first_trade_id,
        case when o.account_id is null then 0 else 1 end as opening_changed
    from changed_keys as k
    left join ranked as r
        on k.account_id = r.account_id and k.exchange_position_key = r.exchange_position_key and r.rn = 1
    left join opening_changed as o
        on k.account_id = o.account_id and k.exchange_position_key = o.exchange_position_key
),

previous as (
    -- the stored leg just before the earliest change
    select
        c.*,
        (
            select s.leg_id from {{ this }} as s
            where s.account_id = c.account_id
                and s.exchange_position_key = c.exchange_position_key
                and (s.trade_time_ms < c.first_time_ms or (s.trade_time_ms = c.first_time_ms and s.trade_id < c.first_trade_id))
            order by s.trade_time_ms desc, s.trade_id desc, s.leg_no desc
            limit 1
        ) as previous_leg_id
    from changed as c
),

first_rebuilt as (
    select
        c.account_id,
        c.symbol,
        c.position_side,
        c.exchange_position_key,
        c.opening_changed,
        case
            when l.leg_id is null then 1
            when l.leg_qty_after = 0 then l.episode_no + 1
            else l.episode_no
        end as from_episode_no
    from previous as c
    left join {{ this }} as l on c.previous_leg_id = l.leg_id
),

with_boundary as (
    select
        r.*,
        (
            select s.leg_seq from {{ this }} as s
            where s.account_id = r.account_id
                and s.exchange_position_key = r.exchange_position_key
                and s.episode_no = r.from_episode_no - 1
            order by s.leg_seq desc
            limit 1
        ) as boundary_leg_seq
    from first_rebuilt as r
),

final as (
    select
        w.account_id,
        w.symbol,
        w.position_side,
        w.exchange_position_key,
        case when w.opening_changed = 1 or w.from_episode_no <= 1 or b.leg_id is null then 1 else 0 end as is_full,
        case when w.opening_changed = 1 or w.from_episode_no <= 1 or b.leg_id is null then 1 else w.from_episode_no end
            as from_episode_no,
        b.trade_time_ms as boundary_time_ms,
        b.trade_id as boundary_trade_id,
        b.leg_qty_before as boundary_qty_before
    from with_boundary as w
    left join {{ this }} as b
        on w.account_id = b.account_id
        and w.exchange_position_key = b.exchange_position_key
        and b.episode_no = w.from_episode_no - 1
        and b.leg_seq = w.boundary_leg_seq
        and b.leg_no = 1
        and b.is_opening = 0
)

select * from final
{%- endmacro %}

{#- The fills a partial rebuild reads (`<model>__fills`, before the delete): the stored legs'
    fills from the boundary fill's time on, and the new or edited ones. The model reads them from
    the fills by primary key, not the key's whole history. -#}
{% macro legs_rebuild_fills_sql() -%}
select l.account_id, l.symbol, l.trade_id
from {{ side_table('plan') }} as p
{{ straight_join() }} {{ this }} as l
    on l.account_id = p.account_id
    and l.exchange_position_key = p.exchange_position_key
    and l.trade_time_ms >= p.boundary_time_ms
where p.is_full = 0 and l.leg_no = 1
union
select account_id, symbol, trade_id from {{ side_table('changes') }}
{%- endmacro %}

{#- Deletes, per planned key, its rows from episode `from_episode_no` on (0: all of them). -#}
{% macro delete_planned_suffix() -%}
    {%- if is_incremental() -%}
    {{ return(adapter.dispatch('delete_planned_suffix', 'stratpos')(side_table('plan'))) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- no table aliases: MariaDB resolves a multi-table DELETE's aliases in the default database -#}
{% macro default__delete_planned_suffix(plan) -%}
    delete {{ this }} from {{ this }}
    inner join {{ plan }}
        on {{ this }}.account_id = {{ plan }}.account_id
        and {{ this }}.exchange_position_key = {{ plan }}.exchange_position_key
        and {{ this }}.episode_no >= {{ plan }}.from_episode_no
{%- endmacro %}

{% macro duckdb__delete_planned_suffix(plan) -%}
    delete from {{ this }}
    using {{ plan }} as p
    where {{ this }}.account_id = p.account_id
        and {{ this }}.exchange_position_key = p.exchange_position_key
        and {{ this }}.episode_no >= p.from_episode_no
{%- endmacro %}

{#-
  The plan of a model kept per key suffix downstream of int_exchange_legs (or of another such
  model), for `create_side_table('plan', …)`: per key, the first episode among the source rows
  stamped after this model's newest row (the source rebuilt every episode of the key from there
  on), and every key this model holds that the source no longer has (from episode 0: all its rows
  go). The source's stamps are compared with this model's own newest, so a run that failed
  between the two models is caught up by the next one.
-#}
{% macro consumer_rebuild_plan_sql(source_relation) -%}
select account_id, exchange_position_key, min(episode_no) as from_episode_no
from {{ source_relation }}
where built_ms > {{ newest_build_stamp() }}
group by account_id, exchange_position_key
union all
select h.account_id, h.exchange_position_key, 0 as from_episode_no
from (select distinct account_id, exchange_position_key from {{ this }}) as h
where not exists (
    select 1 from {{ source_relation }} as s
    where s.account_id = h.account_id and s.exchange_position_key = h.exchange_position_key
)
{%- endmacro %}

{#- The newest `built_ms` this model holds (-1 when empty): its consumers' watermark. -#}
{% macro newest_build_stamp() -%}
    (select coalesce(max(built_ms), -1) from {{ this }})
{%- endmacro %}

{#- The run's build time (ms), stamped on the rows a model writes: an incremental consumer rebuilds
    what is newer than the rows it holds (see int_exchange_leg_averages). -#}
{% macro build_stamp_ms() -%}
    {{ to_int((run_started_at.timestamp() * 1000) | int) }}
{%- endmacro %}
