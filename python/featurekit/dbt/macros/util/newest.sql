{#- The greatest non-null value of a column, as a scalar subquery: an incremental build's
    watermark (e.g. the newest load time already in a feature view's history). -#}
{% macro newest(relation, column) %}
  {{ return(adapter.dispatch('newest', 'featurekit')(relation, column)) }}
{% endmacro %}

{% macro default__newest(relation, column) %}
  {{ return('(select max(' ~ column ~ ') from ' ~ relation ~ ')') }}
{% endmacro %}

{#- DuckDB answers max() by reading the whole column (0.3 s at 17M rows); as a top-1 its
    scan skips the row groups whose zone maps cannot hold a greater value (2 ms), and the
    newest loads are appended last. -#}
{% macro duckdb__newest(relation, column) %}
  {{ return('(select ' ~ column ~ ' from ' ~ relation ~ ' where ' ~ column ~ ' is not null order by ' ~ column ~ ' desc limit 1)') }}
{% endmacro %}
