{#-
  A column of a relation that an older raw schema may lack: the column when the relation has it,
  else a typed NULL. Lets staging read raw tables before and after an ingestion schema change
  (e.g. `raw.order_links.symbol`, SPEC §3.3) without a failing compile.
-#}
{% macro optional_column(relation, column, null_type='varchar(32)') -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for c in adapter.get_columns_in_relation(relation) -%}
            {%- do names.append(c.name | lower) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if column | lower in names -%}
        {{ column }}
    {%- else -%}
        cast(null as {{ null_type if target.type == 'duckdb' else null_type | replace('varchar', 'char') }})
    {%- endif -%}
{%- endmacro %}
