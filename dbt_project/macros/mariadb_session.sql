{#-
  MariaDB's temporary tables for GROUP BY, window functions and materialized derived tables
  stay in memory only up to min(tmp_table_size, max_heap_table_size), 16 MiB by default, and
  spill to disk-based Aria tables beyond it. Over a few hundred thousand fills nearly every
  model and test here builds such a table. Measured on 306,348 allocations (20 days of 30
  strategies x 10 symbols): the R6 commission test took 11.7 s at the default and 4.6 s at
  512 MiB. MariaDB's own documentation:
  https://mariadb.com/kb/en/server-system-variables/#tmp_table_size
  https://mariadb.com/kb/en/set-statement/

  dbt-mariadb opens a new connection per node and has no init command, so the limit is set per
  statement with MariaDB's `SET STATEMENT ... FOR`, in front of every model's CREATE TABLE ... AS
  and every test query. The limit is STRATPOS_MYSQL_TMP_TABLE_MB (the pipeline's Python
  connections set the same per session). MySQL (flavor `mysql`) has no SET STATEMENT; there the
  server's own settings apply.

  The two overrides below repeat dbt-mariadb 1.7's bodies with the prefix added: a root-project
  macro cannot wrap the adapter's own (its package, dbt_mariadb, is no namespace in the Jinja
  context: calling dbt_mariadb.mariadb__get_test_sql fails with "'dbt_mariadb' is undefined").
-#}
{% macro stratpos_statement_settings() -%}
    {%- if target.type == 'mariadb' -%}
    {%- set bytes = (env_var('STRATPOS_MYSQL_TMP_TABLE_MB', '512') | int) * 1024 * 1024 -%}
    set statement tmp_table_size = {{ bytes }}, max_heap_table_size = {{ bytes }} for
    {%- endif -%}
{%- endmacro %}

{#- dbt-mariadb's create_table_as, prefixed with the statement's settings -#}
{% macro mariadb__create_table_as(temporary, relation, sql) -%}
  {%- set sql_header = config.get('sql_header', none) -%}
  {{ sql_header if sql_header is not none }}
  {{ stratpos_statement_settings() }}
  create {% if temporary: -%}temporary{%- endif %} table
    {{ relation.include(database=False) }}
    {% set contract_config = config.get('contract') %}
    {% if contract_config.enforced %}
      {{ get_assert_columns_equivalent(sql) }}
      {{ get_table_columns_and_constraints() }}
      {%- set sql = get_select_subquery(sql) %}
      (
        {{ sql }}
      )
    {% else %}
      {{ sql }}
    {% endif %}
{% endmacro %}

{#- dbt-mariadb's get_test_sql, prefixed with the statement's settings -#}
{% macro mariadb__get_test_sql(main_sql, fail_calc, warn_if, error_if, limit) -%}
    {{ stratpos_statement_settings() }}
    select
      {{ fail_calc }} as failures,
      case
        when {{ fail_calc }} {{ warn_if | replace("!=","<>") }} then 'true'
        else 'false'
      end as should_warn,
      case
        when {{ fail_calc }} {{ error_if | replace("!=","<>") }} then 'true'
        else 'false'
      end as should_error
    from (
      {{ main_sql }}
      {{ "limit " ~ limit if limit != none }}
    ) dbt_internal_test
{%- endmacro %}
