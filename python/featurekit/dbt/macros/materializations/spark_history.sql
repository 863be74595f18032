{#- featurekit_history on dbt-spark. Its incremental materialization accepts only its own
    strategies and builds their SQL itself (no get_incremental_<strategy>_sql lookup), so the
    project's root macros (written by `featurekit init`) route featurekit_history here and
    every other strategy back to dbt-spark's own macros.

    Plain Parquet tables have no DELETE, so the delete+insert on (keys, feature timestamp) is
    done in one of two ways, with the same result:
    - the new rows replace none that differ (the usual load: new instants, or instants
      recomputed to the same values): the rows not already in the history are appended;
    - otherwise the history is rewritten: its rows that the new rows do not replace, and
      the new rows, into <view>__fk_rewrite, then over the view with insert overwrite, then
      the copy is dropped. A rewrite cut short leaves the copy behind; the next build stops
      and says how to restore from it instead of building over it. -#}
{% macro spark_validate_incremental_strategy(raw_strategy, file_format) %}
  {%- if raw_strategy == 'featurekit_history' -%}
    {{ return(raw_strategy) }}
  {%- endif -%}
  {{ return(dbt.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) }}
{% endmacro %}

{% macro spark_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
  {%- if strategy != 'featurekit_history' -%}
    {{ return(dbt.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
  {%- endif -%}
  {%- set timestamp = featurekit.history_timestamp(unique_key) -%}
  {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | list -%}
  {%- set rewrite = target.incorporate(path={'identifier': target.identifier ~ '__fk_rewrite'}) -%}
  {%- if load_cached_relation(rewrite) is not none -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": " ~ rewrite ~ " is left from a rewrite of " ~ target ~ " that did not finish and holds its whole history; restore it with `insert overwrite table " ~ target ~ " select * from " ~ rewrite ~ "`, then drop " ~ rewrite ~ " and build again") }}
  {%- endif -%}
  {%- set same_key = [] -%}
  {%- set same_row = [] -%}
  {%- for key in unique_key -%}
    {%- do same_key.append('h.' ~ key ~ ' = n.' ~ key) -%}
  {%- endfor -%}
  {%- for column in columns -%}
    {%- do same_row.append('h.' ~ column ~ ' <=> n.' ~ column) -%}
  {%- endfor -%}
  {#- the history rows the new rows replace (the bound lets the scan skip older files) -#}
  {%- set replaced = 'h.' ~ timestamp ~ ' >= (select min(' ~ timestamp ~ ') from ' ~ source ~ ') and exists (select 1 from '
      ~ source ~ ' as n where ' ~ same_key | join(' and ') -%}
  {%- set changed = run_query('select count(*) from ' ~ target ~ ' as h where ' ~ replaced ~ ' and not (' ~ same_row | join(' and ') ~ '))').rows[0][0] -%}
  {%- if changed == 0 -%}
    {{ return('insert into table ' ~ target ~ ' select ' ~ columns | join(', ') ~ ' from ' ~ source ~ ' as n where not exists (select 1 from '
        ~ target ~ ' as h where ' ~ same_key | join(' and ') ~ ')') }}
  {%- endif -%}
  {% call statement('featurekit_history_rewrite') %}
    {{ get_create_table_as_sql(False, rewrite,
        'select ' ~ columns | join(', ') ~ ' from ' ~ target ~ ' as h where not (' ~ replaced ~ '))'
        ~ ' union all select ' ~ columns | join(', ') ~ ' from ' ~ source) }}
  {% endcall %}
  {% call statement('featurekit_history_overwrite') %}
    insert overwrite table {{ target }} select {{ columns | join(', ') }} from {{ rewrite }}
  {% endcall %}
  {{ return('drop table ' ~ rewrite) }}
{% endmacro %}
