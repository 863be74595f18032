{#- The select-list of one view's features for a row `alias` (its columns plus
    __fk_feature_ts, null when no row matched) seen at time `at`: steps 3-5 of the
    point-in-time contract. A row older than the ttl counts as missing; request-time
    features are computed from the row and `at`; the fill policy replaces what is missing. -#}
{% macro featurekit_feature_columns(view, alias, at) %}
  {%- set alive = alias ~ ".__fk_feature_ts is not null" -%}
  {%- if view.ttl_seconds -%}
    {%- set alive = at ~ " <= " ~ featurekit_add_seconds(alias ~ ".__fk_feature_ts", view.ttl_seconds) -%}
  {%- endif -%}
  {%- set columns = [] -%}
  {%- for feature in view.features -%}
    {%- if feature.kind == 'request_time' -%}
      {%- set value = featurekit_elapsed(alias ~ "." ~ feature.source, at, feature.unit_seconds) -%}
    {%- else -%}
      {%- set value = alias ~ "." ~ feature.source -%}
    {%- endif -%}
    {%- set value = "case when " ~ alive ~ " then " ~ value ~ " end" -%}
    {%- if feature.fill is not none -%}
      {%- set value = "coalesce(" ~ value ~ ", " ~ featurekit_literal(feature.fill) ~ ")" -%}
    {%- endif -%}
    {%- do columns.append(value ~ " as " ~ feature.name) -%}
  {%- endfor -%}
  {%- do columns.append("case when " ~ alive ~ " then " ~ alias ~ ".__fk_feature_ts end as " ~ view.ref ~ "__feature_ts") -%}
  {{ return(columns) }}
{% endmacro %}
