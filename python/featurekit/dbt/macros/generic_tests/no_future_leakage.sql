{#- Fails on every row of a training set whose joined feature timestamp (any <view>__feature_ts
    column, as point_in_time_join writes them) is not strictly before its label time. -#}
{% test no_future_leakage(model, timestamp_column='label_ts') %}
  {%- set joined = [] -%}
  {%- set columns = adapter.get_columns_in_relation(model) -%}
  {%- for column in columns if column.name.endswith('__feature_ts') -%}
    {%- do joined.append(column.name) -%}
  {%- endfor -%}
  {%- if not joined and execute -%}
    {{ exceptions.raise_compiler_error("no_future_leakage on " ~ model ~ ": no <view>__feature_ts columns to check; is it a featurekit training set?") }}
  {%- endif -%}
  select *
  from {{ model }}
  where {% for column in joined %}{{ column }} >= {{ featurekit.label_time(timestamp_column, columns) }}{{ ' or ' if not loop.last }}{% endfor %}
  {%- if not joined %}false{% endif %}
{% endtest %}
