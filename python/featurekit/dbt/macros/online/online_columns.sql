{#- The columns of a view's online rows: its keys, the instant a row becomes visible, the
    row's feature timestamp and every column the features are computed from. -#}
{% macro online_columns(view) %}
  {{ return(view['keys'] + ['__fk_at', '__fk_feature_ts'] + featurekit.fetched_columns(view)) }}
{% endmacro %}
