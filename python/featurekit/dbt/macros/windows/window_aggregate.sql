{#- One aggregate over the events of window `in_window` (a condition), portable SQL. -#}
{% macro window_aggregate(aggregate, in_window) %}
  {%- set value = "case when " ~ in_window ~ " then " ~ (aggregate.input or '1') ~ " end" -%}
  {%- if aggregate.function == 'count_distinct' -%}
    {{ return("count(distinct " ~ value ~ ")") }}
  {%- elif aggregate.function == 'count' -%}
    {{ return("count(" ~ value ~ ")") }}
  {%- else -%}
    {{ return(aggregate.function ~ "(" ~ value ~ ")") }}
  {%- endif -%}
{% endmacro %}
