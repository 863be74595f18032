{#- A statement asking whether the session may run the engine's ASOF join: one row whose last
    column is 'true' when it may; none on an engine without the choice. Asked once per join,
    before rendering it (featurekit.join_plan_queries, with_join_plans). -#}
{% macro asof_join_sql() %}
  {{ return(adapter.dispatch('asof_join_sql', 'featurekit')()) }}
{% endmacro %}

{% macro default__asof_join_sql() %}
  {{ return(none) }}
{% endmacro %}

{#- Spark: LEFT ASOF JOIN runs only with this runtime setting on (off by default); a Spark
    without ASOF answers '<undefined>' for the unknown key. -#}
{% macro spark__asof_join_sql() %}
  {{ return('set spark.sql.join.asofJoin.enabled') }}
{% endmacro %}
