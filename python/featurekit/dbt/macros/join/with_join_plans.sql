{#- The queries whose answers choose the join's plans: per view, whether it has the index its
    join can descend (join_index_sql), then, once, whether the session may run an ASOF join
    (asof_join_sql); none where the engine has no such choice. -#}
{% macro join_plan_queries(views) %}
  {%- set queries = [] -%}
  {%- for view in views -%}
    {%- do queries.append(featurekit.join_index_sql(view)) -%}
  {%- endfor -%}
  {%- do queries.append(featurekit.asof_join_sql()) -%}
  {{ return(queries) }}
{% endmacro %}

{#- The views, each marked with the plans the warehouse offers its join: `join_index` and
    `asof_join`, read from `answers`, the first row of each query of join_plan_queries (none
    where there is no query). In dbt the answers are asked here by run_query; train-set asks
    them through its seam and passes them (featurekit.training.with_join_plans). -#}
{% macro with_join_plans(views, answers=none) %}
  {%- if answers is none -%}
    {%- set answers = [] -%}
    {%- for sql in featurekit.join_plan_queries(views) -%}
      {%- do answers.append(none if sql is none else run_query(sql).rows[0]) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- set asof = answers[-1] is not none and (answers[-1][-1] | string | lower) == 'true' -%}
  {%- set marked = [] -%}
  {%- for view in views -%}
    {%- set index = answers[loop.index0] -%}
    {%- do marked.append(dict(view, join_index=(index is not none and index[0]), asof_join=asof)) -%}
  {%- endfor -%}
  {{ return(marked) }}
{% endmacro %}
