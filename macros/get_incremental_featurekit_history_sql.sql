{#- Written by `featurekit init`: dbt looks up an incremental strategy's macro in the
    root project only, so this makes featurekit's history strategy (incremental_strategy:
    featurekit_history, for feature views) available to the project's models. -#}
{% macro get_incremental_featurekit_history_sql(arg_dict) %}
  {{ return(featurekit.get_incremental_featurekit_history_sql(arg_dict)) }}
{% endmacro %}

{#- dbt-spark checks and builds incremental strategies in these two macros of its own: the
    project's versions let featurekit_history through (featurekit's spark_history.sql). -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
  {{ return(featurekit.spark_validate_incremental_strategy(raw_strategy, file_format)) }}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
  {{ return(featurekit.spark_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates)) }}
{% endmacro %}

{#- dbt-postgres makes a new table's indexes in this macro: the project's version adds the
    one featurekit's point-in-time join descends to feature views (featurekit's view_index.sql). -#}
{% macro postgres__create_indexes(relation) %}
  {{ return(featurekit.create_view_indexes(relation)) }}
{% endmacro %}
