{#- The incremental strategy of feature views (`incremental_strategy: featurekit_history`):
    dbt's delete+insert on unique_key (the view's keys and feature timestamp), with one more
    condition on the rows it deletes: a feature timestamp at or after the earliest one of the
    new batch. Every row the unique key matches meets it, so the result is delete+insert's;
    the condition is a cheap comparison that spares the join most of a long history (a
    windowed view's delete at 1M keys: 0.30 -> 0.06-0.08 s). On PostgreSQL it also makes sure
    the view has the point-in-time join's index (view_index.sql). -#}
{% macro get_incremental_featurekit_history_sql(arg_dict) %}
  {%- do featurekit.ensure_view_index(arg_dict['target_relation']) -%}
  {%- set unique_key = arg_dict['unique_key'] -%}
  {%- set timestamp = featurekit.history_timestamp(unique_key) -%}
  {%- set source = arg_dict['temp_relation'] -%}
  {%- set bound = adapter.dispatch('history_target', 'featurekit')(arg_dict['target_relation']) ~ '.' ~ timestamp
      ~ ' >= (select min(' ~ timestamp ~ ') from ' ~ source ~ ')' -%}
  {%- set sql = get_delete_insert_merge_sql(arg_dict['target_relation'], source, unique_key, arg_dict['dest_columns'],
      (arg_dict['incremental_predicates'] or []) + [bound]) -%}
  {%- set mark = featurekit.history_mark_sql(arg_dict['target_relation']) -%}
  {{ return(sql.rstrip().rstrip(';') ~ (';\n' ~ mark if mark else '')) }}
{% endmacro %}

{#- The history's generation: an id that featurekit_history writes on the table (its comment)
    at every incremental build, keeping the one it finds there. A table that dbt creates
    again (a first build, --full-refresh, after a drop) holds none until its next incremental
    build, which starts a new one (the run's invocation_id). So while a table's generation
    stays the same, every change to it since was a featurekit_history build: rows of keys
    with rows loaded after the load watermark, which is what lets an online table skip
    re-reading the history (featurekit.online_plan). dbt's persist_docs, where it writes
    the table's comment, replaces the mark: the online tables then prove it by reading. An
    engine without table comments here (Spark) has no generation. -#}
{% macro history_generation(relation) %}
  {{ return(featurekit.generation_in(adapter.dispatch('history_comment', 'featurekit')(relation))) }}
{% endmacro %}

{#- The statement that marks the table after a build: its generation, or a new one. -#}
{% macro history_mark_sql(relation) %}
  {%- set comment = adapter.dispatch('history_comment', 'featurekit')(relation) -%}
  {%- if comment is sameas false -%}
    {{ return('') }}
  {%- endif -%}
  {{ return('comment on table ' ~ relation ~ ' is ' ~ featurekit.literal(featurekit.generation_comment(featurekit.generation_in(comment) or invocation_id))) }}
{% endmacro %}

{#- The comment that carries a generation, and the generation a comment carries (none). -#}
{% macro generation_comment(generation) %}
  {{ return('featurekit_history generation ' ~ generation) }}
{% endmacro %}

{% macro generation_in(comment) %}
  {%- set prefix = featurekit.generation_comment('') -%}
  {{ return(comment[prefix | length:] if comment is string and comment.startswith(prefix) and comment != prefix else none) }}
{% endmacro %}

{#- The table's comment (none when it has none); false on an engine where featurekit keeps no
    generation. -#}
{% macro default__history_comment(relation) %}
  {{ return(false) }}
{% endmacro %}

{% macro duckdb__history_comment(relation) %}
  {%- set rows = run_query('select comment from duckdb_tables() where database_name = ' ~ featurekit.literal(relation.database)
      ~ ' and schema_name = ' ~ featurekit.literal(relation.schema) ~ ' and table_name = ' ~ featurekit.literal(relation.identifier)).rows -%}
  {{ return(rows[0][0] if rows | length == 1 else none) }}
{% endmacro %}

{% macro postgres__history_comment(relation) %}
  {%- set name = adapter.quote(relation.schema) ~ '.' ~ adapter.quote(relation.identifier) -%}
  {{ return(run_query('select obj_description(to_regclass(' ~ featurekit.literal(name) ~ "), 'pg_class')").rows[0][0]) }}
{% endmacro %}

{#- The view's timestamp column, after checking that unique_key holds it (and the keys). -#}
{% macro history_timestamp(unique_key) %}
  {%- set timestamp = featurekit.view_spec(model).timestamp -%}
  {%- if unique_key is string or unique_key is none or timestamp not in unique_key -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": incremental_strategy featurekit_history needs unique_key = the view's keys and its timestamp column '" ~ timestamp ~ "', got " ~ unique_key) }}
  {%- endif -%}
  {{ return(timestamp) }}
{% endmacro %}

{#- The alias delete+insert's delete gives the target: dbt's default__get_delete_insert_merge_sql
    names it DBT_INTERNAL_DEST. An adapter whose delete+insert names it otherwise needs its own
    implementation here. -#}
{% macro default__history_target(target) %}
  {{ return('DBT_INTERNAL_DEST') }}
{% endmacro %}

{#- dbt-duckdb's delete aliases it (duckdb__get_delete_insert_merge_sql). -#}
{% macro duckdb__history_target(target) %}
  {{ return('DBT_INCREMENTAL_TARGET') }}
{% endmacro %}
