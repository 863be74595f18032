{#- The label time column as a plain timestamp in UTC, the time zone of feature timestamps.
    A column with a time zone is converted at UTC: a plain cast would give the wall-clock time
    of the session's time zone (the machine's, by default), moving every label by its offset,
    east of UTC into the future. `columns` are the label relation's columns, as
    adapter.get_columns_in_relation gives them; without them the column is taken as naive. -#}
{% macro label_time(timestamp_column, columns=[]) %}
  {%- set quoted = adapter.quote(timestamp_column) -%}
  {%- for column in columns if column.name == timestamp_column -%}
    {%- set type = column.dtype | lower -%}
    {#- exact names: 'timestamp without time zone' (PostgreSQL's plain timestamp) has 'zone' in it too -#}
    {%- if type in ['timestamp with time zone', 'timestamptz', 'timestamp_tz'] -%}
      {{ return("cast(" ~ quoted ~ " at time zone 'UTC' as timestamp)") }}
    {%- endif -%}
  {%- endfor -%}
  {{ return("cast(" ~ quoted ~ " as timestamp)") }}
{% endmacro %}
