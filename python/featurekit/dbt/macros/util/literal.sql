{#- Renders a YAML value (a fill default) as a SQL literal. -#}
{% macro literal(value) %}
  {%- if value is none -%}
    {{ return('null') }}
  {%- elif value is sameas true or value is sameas false -%}
    {{ return('true' if value else 'false') }}
  {%- elif value is number -%}
    {{ return(value | string) }}
  {%- else -%}
    {{ return("'" ~ (value | string).replace("'", "''") ~ "'") }}
  {%- endif -%}
{% endmacro %}
