{#- One aggregate over the events of window `in_window` (a condition). -#}
{% macro window_aggregate(aggregate, in_window) %}
  {{ return(adapter.dispatch('window_aggregate', 'featurekit')(aggregate, in_window)) }}
{% endmacro %}

{#- Portable SQL. -#}
{% macro default__window_aggregate(aggregate, in_window) %}
  {%- set value = "case when " ~ in_window ~ " then " ~ (aggregate.input or '1') ~ " end" -%}
  {%- if aggregate.function == 'count_distinct' -%}
    {{ return("count(distinct " ~ value ~ ")") }}
  {%- elif aggregate.function == 'count' -%}
    {{ return("count(" ~ value ~ ")") }}
  {%- else -%}
    {{ return(aggregate.function ~ "(" ~ value ~ ")") }}
  {%- endif -%}
{% endmacro %}

{#- PostgreSQL: sum and avg added exactly, in numeric, then given as double precision as
    DuckDB's fsum/favg give them: a window's sum then does not depend on the order of the
    additions, so incremental and full builds agree bit for bit. A double enters as the 15
    digits PostgreSQL casts it to, so a sum is that of the values as written (38.57 + 245.71
    + 73.43 = 357.71), where DuckDB adds the binary doubles (357.71000000000004): the two can
    differ in the last bit of a double. -#}
{% macro postgres__window_aggregate(aggregate, in_window) %}
  {%- if aggregate.function not in ['sum', 'avg'] -%}
    {{ return(featurekit.default__window_aggregate(aggregate, in_window)) }}
  {%- endif -%}
  {%- set value = "case when " ~ in_window ~ " then " ~ aggregate.input ~ " end" -%}
  {%- set total = "cast(sum(cast(" ~ value ~ " as numeric)) as double precision)" -%}
  {#- an average divides the double sum, as DuckDB's favg: numeric division would round to 16 digits first -#}
  {{ return(total if aggregate.function == 'sum' else total ~ " / nullif(count(" ~ value ~ "), 0)") }}
{% endmacro %}
