{#- The SQL name of an 8-byte float. dbt.type_float() gives `float`, which is 4 bytes in
    DuckDB and Spark; `double precision` is the standard's name, which Spark does not know. -#}
{% macro type_double() %}
  {{ return(adapter.dispatch('type_double', 'featurekit')()) }}
{% endmacro %}

{% macro default__type_double() %}
  {{ return('double precision') }}
{% endmacro %}

{% macro spark__type_double() %}
  {{ return('double') }}
{% endmacro %}
