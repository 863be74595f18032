{#- timestamp + a whole number of seconds, exact to the microsecond. -#}
{% macro add_seconds(expression, seconds) %}
  {{ return(adapter.dispatch('add_seconds', 'featurekit')(expression, seconds)) }}
{% endmacro %}

{% macro default__add_seconds(expression, seconds) %}
  {{ return("(" ~ expression ~ " + interval '" ~ seconds ~ " seconds')") }}
{% endmacro %}

{% macro duckdb__add_seconds(expression, seconds) %}
  {#- to_seconds() builds an exact interval; a string literal would be parsed per call. -#}
  {{ return("(" ~ expression ~ " + to_seconds(" ~ seconds ~ "))") }}
{% endmacro %}
