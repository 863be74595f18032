{#- Whole units (floor) elapsed from `start` to `end`: the one definition of request-time
    features such as days_since_last_purchase. Not date_diff, which counts calendar
    boundaries crossed: 23:59 to 00:01 is 0 days elapsed, not 1. -#}
{% macro elapsed(start, end, unit_seconds) %}
  {{ return(adapter.dispatch('elapsed', 'featurekit')(start, end, unit_seconds)) }}
{% endmacro %}

{% macro default__elapsed(start, end, unit_seconds) %}
  {{ return("cast(floor(extract(epoch from (" ~ end ~ " - " ~ start ~ ")) / " ~ unit_seconds ~ ") as bigint)") }}
{% endmacro %}

{% macro duckdb__elapsed(start, end, unit_seconds) %}
  {#- Integer microseconds: exact, and what the online store computes. DuckDB's // truncates
      toward zero, so a negative remainder takes one unit off to make it a floor. -#}
  {%- set micros = "(epoch_us(" ~ end ~ ") - epoch_us(" ~ start ~ "))" -%}
  {%- set unit = unit_seconds * 1000000 -%}
  {{ return("(" ~ micros ~ " // " ~ unit ~ " - cast(" ~ micros ~ " % " ~ unit ~ " < 0 as bigint))") }}
{% endmacro %}

{#- Spark: the same integer microseconds (Spark's resolution); div truncates toward zero. -#}
{% macro spark__elapsed(start, end, unit_seconds) %}
  {%- set micros = "(unix_micros(" ~ end ~ ") - unix_micros(" ~ start ~ "))" -%}
  {%- set unit = unit_seconds * 1000000 -%}
  {{ return("(" ~ micros ~ " div " ~ unit ~ " - cast(" ~ micros ~ " % " ~ unit ~ " < 0 as bigint))") }}
{% endmacro %}
