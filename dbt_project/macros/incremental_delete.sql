{#-
  The MySQL/MariaDB incremental materialization's delete of the rows it is about to insert
  (dbt-mysql's `incremental_delete`, overridden here by name): a join on the unique key
  instead of `where key in (select key from tmp)`: a single-table `delete ... where id in
  (subquery)` is not semi-join optimised before MariaDB 11.1 and runs the subquery per row of the
  target. A model whose pre-hook already removed what it rebuilds (the legs' key suffixes) finds
  nothing here; keyed on the target's index it costs the new rows only.
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
