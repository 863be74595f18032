{#- The version of this dbt package. featurekit's Python side reads it from dbt's manifest
    and refuses to work with a project whose package is another version than its own. -#}
{% macro package_version() %}
  {{ return('0.1.0') }}
{% endmacro %}
