{#- dbt looks up an incremental strategy's macro in the root project only: this makes the
    featurekit package's history strategy available to the feature views (written by
    `featurekit init`). -#}
{% macro get_incremental_featurekit_history_sql(arg_dict) %}
  {{ return(featurekit.get_incremental_featurekit_history_sql(arg_dict)) }}
{% endmacro %}
