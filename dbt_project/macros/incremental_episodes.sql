{#-
  Incremental models keyed by episode (exchange_position_id). An episode is rebuilt when
  any of its rows would differ from what the table holds — new fills, a late fill that
  renumbered legs, a link or signal that arrived later, the episode-end rule — and
  episodes that no longer exist are removed. Everything else is left untouched, so an
  incremental run equals a full refresh.

  `delete_changed_episodes` is the model's pre-hook: it deletes every episode whose rows
  differ (in either direction) on `columns`. The model then selects the episodes the table
  no longer holds (`episodes_to_build`).
-#}
{% macro delete_changed_episodes(source_relation, columns) -%}
    {%- if is_incremental() -%}
    {%- set cols = columns | join(', ') -%}
    delete from {{ this }}
    where exchange_position_id in (
        select exchange_position_id from (
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
        ) as changed
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
