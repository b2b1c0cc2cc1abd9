{#-
  Incremental models keyed by episode (exchange_position_id). An episode is rebuilt when
  any of its rows would differ from what the table holds — new fills, a late fill that
  renumbered legs, a link or signal that arrived later, the episode-end rule — and
  episodes that no longer exist are removed. Everything else is left untouched, so an
  incremental run equals a full refresh.

  `delete_changed_episodes` is the model's pre-hook: it deletes every episode whose rows
  differ (in either direction) on `columns`. The model then selects the episodes the table
  no longer holds (`episodes_to_build`).

  On MySQL/MariaDB the changed episodes are first collected into a keyed temporary table and
  deleted by a join: a single-table `delete ... where id in (subquery)` is not semi-join
  optimised there before MariaDB 11.1 and runs the subquery per row of the table.
-#}
{% macro changed_episodes_sql(source_relation, columns) -%}
    {%- set cols = columns | join(', ') -%}
    select exchange_position_id from (
        select {{ cols }} from {{ source_relation }}
        except
        select {{ cols }} from {{ this }}
    ) as added
    union
    select exchange_position_id from (
        select {{ cols }} from {{ this }}
        except
        select {{ cols }} from {{ source_relation }}
    ) as removed
{%- endmacro %}

{% macro delete_changed_episodes(source_relation, columns) -%}
    {{ return(adapter.dispatch('delete_changed_episodes', 'stratpos')(source_relation, columns)) }}
{%- endmacro %}

{% macro default__delete_changed_episodes(source_relation, columns) -%}
    {%- if is_incremental() -%}
    {%- set changed = this.schema ~ '.' ~ this.identifier ~ '__changed' -%}
    {%- if execute -%}
        {%- do run_query('drop temporary table if exists ' ~ changed) -%}
        {%- do run_query(
            stratpos_statement_settings() ~ ' create temporary table ' ~ changed ~ ' (primary key (exchange_position_id)) as '
            ~ changed_episodes_sql(source_relation, columns)
        ) -%}
    {%- endif -%}
    {#- no table aliases: MariaDB resolves a multi-table DELETE's aliases in the default database -#}
    delete {{ this }} from {{ this }}
    inner join {{ changed }} on {{ this }}.exchange_position_id = {{ changed }}.exchange_position_id
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{% macro duckdb__delete_changed_episodes(source_relation, columns) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where exchange_position_id in (
        select exchange_position_id from ({{ changed_episodes_sql(source_relation, columns) }}) as changed
    )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{% macro episodes_to_build(source_alias='src') -%}
    {%- if is_incremental() -%}
    where {{ source_alias }}.exchange_position_id not in (select distinct exchange_position_id from {{ this }})
    {%- endif -%}
{%- endmacro %}

{#-
  The MySQL/MariaDB incremental materialization's delete of the rows it is about to insert
  (dbt-mysql's `incremental_delete`, overridden here by name): a join on the unique key
  instead of `where key in (select key from tmp)`, which MariaDB 10.x runs per row of the
  target (see above). The models' pre-hook has already removed the changed episodes, so this
  delete normally finds nothing; keyed on the target's index it costs the new rows only.
-#}
{% macro incremental_delete(tmp_relation, target_relation, unique_key=none, statement_name="pre_main") %}
    {%- if unique_key is not none and unique_key|length -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    delete {{ target_relation }} from {{ target_relation }}
    inner join (select distinct {{ keys | join(', ') }} from {{ tmp_relation }}) as s
        on {% for k in keys %}{{ target_relation ~ '.' ~ k ~ ' = s.' ~ k }}{{ ' and ' if not loop.last }}{% endfor %}
    {%- else -%}
    select 1
    {%- endif %}
{%- endmacro %}
