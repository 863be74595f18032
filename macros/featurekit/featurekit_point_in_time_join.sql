{#- The point-in-time join (the contract in DESIGN.md): for each label row (keys, t) and each
    view, the view row with the greatest feature timestamp among rows recorded strictly before
    t (or, when the view has an availability column, available strictly before t); then ttl,
    request-time features and fill (featurekit_feature_columns).

    labels          a relation or table name holding the label rows
    views           view specs from featurekit_feature_set_spec / featurekit_features_spec
    timestamp_column  the label time column (a timestamp; with a time zone, converted to UTC)
    label_columns   label columns to pass through, in order (default: all of `labels`)
    row_column      a column giving the output order (default: the order rows are read)

    Output: the label columns, then per view its features and <view>__feature_ts; one row
    per label row, in label order, duplicates kept. -#}
{% macro featurekit_point_in_time_join(labels, views, timestamp_column='label_ts', label_columns=none, row_column=none) %}
  {%- set columns = [] -%}
  {%- if label_columns is none -%}
    {%- set columns = adapter.get_columns_in_relation(labels) -%}
    {%- set label_columns = columns | map(attribute='name') | list -%}
  {%- endif -%}
  {%- set label_time = featurekit_label_time(timestamp_column, columns) -%}
  {{ return(adapter.dispatch('featurekit_point_in_time_join', 'featurekit')(labels, views, label_time, label_columns, row_column)) }}
{% endmacro %}

{#- The feature view's columns a join needs: keys, feature timestamp and feature sources. -#}
{% macro featurekit_fetched_columns(view) %}
  {%- set columns = [] -%}
  {%- for feature in view.features if feature.source not in columns -%}
    {%- do columns.append(feature.source) -%}
  {%- endfor -%}
  {{ return(columns) }}
{% endmacro %}

{% macro featurekit_labels_cte(labels, label_time, row_column) %}
__fk_labels as (
    select
        *,
        {{ row_column or 'row_number() over ()' }} as __fk_row,
        {{ label_time }} as __fk_ts
    from {{ labels }}
)
{%- endmacro %}

{% macro featurekit_join_select(views, label_columns) %}
select
    {%- for column in label_columns %}
    l.{{ adapter.quote(column) }},
    {%- endfor %}
    {%- for view in views %}
    {%- set outer = loop %}
    {%- for column in featurekit_feature_columns(view, 'f' ~ loop.index, 'l.__fk_ts') %}
    {{ column }}{{ ',' if not (outer.last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from __fk_labels as l
{%- endmacro %}

{#- Portable: rank the earlier rows per label row and keep the first. -#}
{% macro default__featurekit_point_in_time_join(labels, views, label_time, label_columns, row_column) %}
with {{ featurekit_labels_cte(labels, label_time, row_column) }}
{%- for view in views %}
{%- set cutoff = view.available_at or view.timestamp %}
, __fk_matches_{{ loop.index }} as (
    select
        l.__fk_row,
        v.{{ view.timestamp }} as __fk_feature_ts,
        {%- for column in featurekit_fetched_columns(view) %}
        v.{{ column }},
        {%- endfor %}
        row_number() over (partition by l.__fk_row order by v.{{ view.timestamp }} desc) as __fk_rank
    from __fk_labels as l
    join {{ view.relation }} as v
      on {% for key in view['keys'] %}l.{{ key }} = v.{{ key }} and {% endfor %}v.{{ cutoff }} < l.__fk_ts
)
{%- endfor %}
{{ featurekit_join_select(views, label_columns) }}
{%- for view in views %}
left join __fk_matches_{{ loop.index }} as f{{ loop.index }}
  on f{{ loop.index }}.__fk_row = l.__fk_row and f{{ loop.index }}.__fk_rank = 1
{%- endfor %}
order by l.__fk_row
{% endmacro %}

{#- DuckDB: native ASOF joins over each view's visibility timeline (featurekit_view_timeline). -#}
{% macro duckdb__featurekit_point_in_time_join(labels, views, label_time, label_columns, row_column) %}
with {{ featurekit_labels_cte(labels, label_time, row_column) }}
{%- for view in views %}
, __fk_view_{{ loop.index }} as (
{{ featurekit_view_timeline(view, featurekit_fetched_columns(view)) }}
)
{%- endfor %}
{{ featurekit_join_select(views, label_columns) }}
{%- for view in views %}
{%- set f = 'f' ~ loop.index %}
asof left join __fk_view_{{ loop.index }} as {{ f }}
  on {% for key in view['keys'] %}l.{{ key }} = {{ f }}.{{ key }} and {% endfor %}l.__fk_ts > {{ f }}.__fk_at
{%- endfor %}
order by l.__fk_row
{% endmacro %}
