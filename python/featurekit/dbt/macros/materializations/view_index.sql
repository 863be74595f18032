{#- The index the PostgreSQL point-in-time join descends (postgres__view_join): on the feature
    view's keys and feature timestamp, its other fetched columns INCLUDEd, so a label's row is
    read from the index alone wherever the table's visibility map is current (autovacuum
    keeps it so after each build). Made once per table: the history strategy makes sure of it
    on every incremental run (so a view built before it gets one), and the project's
    postgres__create_indexes (written by `featurekit init`) when dbt creates the table.
    PostgreSQL maintains it through every later insert and delete. -#}
{% macro ensure_view_index(relation) %}
  {%- do adapter.dispatch('ensure_view_index', 'featurekit')(relation) -%}
{% endmacro %}

{% macro default__ensure_view_index(relation) %}
{% endmacro %}

{% macro postgres__ensure_view_index(relation) %}
  {%- set view = featurekit.view_spec(model) -%}
  {%- if not run_query(featurekit.join_index_sql(view, relation)).columns[0].values()[0] -%}
    {%- set key = view['keys'] + [view.timestamp] -%}
    {%- set included = [] -%}
    {%- for column in featurekit.fetched_columns(view) if column not in key -%}
      {%- do included.append(column) -%}
    {%- endfor -%}
    {%- do run_query("create index on " ~ relation ~ " (" ~ key | join(', ') ~ ")"
        ~ (" include (" ~ included | join(', ') ~ ")" if included else "")) -%}
  {%- endif -%}
{% endmacro %}

{#- dbt's create_indexes (its `indexes` config), then the join's index when the model is a
    feature view: the body of the project's postgres__create_indexes. -#}
{% macro create_view_indexes(relation) %}
  {%- do dbt.default__create_indexes(relation) -%}
  {%- if (model.config.meta or {}).get('featurekit') or (model.meta or {}).get('featurekit') -%}
    {%- do featurekit.ensure_view_index(relation) -%}
  {%- endif -%}
{% endmacro %}
