{#- The views, each marked with the plans the warehouse offers its join: `join_index` (whether
    join_index_sql finds its index) and `asof_join` (whether the session may run ASOF,
    asked once: asof_join_sql). In dbt, where run_query can ask; train-set marks them itself
    (featurekit.training.with_join_plans). -#}
{% macro with_join_plans(views) %}
  {%- set asof_sql = featurekit.asof_join_sql() -%}
  {%- set asof = asof_sql is not none and (run_query(asof_sql).rows[0][-1] | string | lower) == 'true' -%}
  {%- set marked = [] -%}
  {%- for view in views -%}
    {%- set sql = featurekit.join_index_sql(view) -%}
    {%- do marked.append(dict(view, join_index=(sql is not none and run_query(sql).columns[0].values()[0]), asof_join=asof)) -%}
  {%- endfor -%}
  {{ return(marked) }}
{% endmacro %}
