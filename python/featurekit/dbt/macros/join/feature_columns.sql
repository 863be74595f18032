{#- The select-list of one view's features for its matched row, seen at time `at`: steps 3-5
    of the point-in-time contract. The row's columns are named `prefix` + column, its feature
    timestamp is `feature_ts` (null when no row matched). A row older than the ttl counts as
    missing; request-time features are computed from the row and `at`; the fill policy
    replaces what is missing. -#}
{% macro feature_columns(view, prefix, feature_ts, at) %}
  {%- set alive = feature_ts ~ " is not null" -%}
  {%- if view.ttl_seconds -%}
    {%- set alive = at ~ " <= " ~ featurekit.add_seconds(feature_ts, view.ttl_seconds) -%}
  {%- endif -%}
  {%- set columns = [] -%}
  {%- for feature in view.features -%}
    {%- if feature.kind == 'request_time' -%}
      {%- set value = featurekit.elapsed(prefix ~ feature.source, at, feature.unit_seconds) -%}
    {%- else -%}
      {%- set value = prefix ~ feature.source -%}
    {%- endif -%}
    {%- set value = "case when " ~ alive ~ " then " ~ value ~ " end" -%}
    {%- if feature.fill is not none -%}
      {%- set value = "coalesce(" ~ value ~ ", " ~ featurekit.literal(feature.fill) ~ ")" -%}
    {%- endif -%}
    {%- do columns.append(value ~ " as " ~ feature.name) -%}
  {%- endfor -%}
  {%- do columns.append("case when " ~ alive ~ " then " ~ feature_ts ~ " end as " ~ view.ref ~ "__feature_ts") -%}
  {{ return(columns) }}
{% endmacro %}
