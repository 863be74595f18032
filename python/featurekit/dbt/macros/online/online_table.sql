{#- An online table model: models/online/online_<view>.sql holds
    {{ featurekit.online_table(ref('customer_orders', v=1)) }}
    and `featurekit publish` copies it into a serving snapshot. Its rows are those of
    featurekit.online_rows at var('featurekit_as_of') (a UTC timestamp), by default the
    time the dbt run started (featurekit.online_as_of). The featurekit_online
    materialization (dbt_project.yml) builds it incrementally. -#}
{% macro online_table(view_relation) %}
  {%- if not execute -%}
    {{ return('select 1 as __fk_parsing') }}
  {%- endif -%}
  {%- set matches = featurekit.feature_views().values() | selectattr('relation', 'equalto', view_relation | string) | list -%}
  {%- if not matches -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": featurekit.online_table(" ~ view_relation ~ ") is not a feature view (no config.meta.featurekit)") }}
  {%- endif -%}
  {%- set view = matches[0] -%}
  {%- if model.name != 'online_' ~ view.ref -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": the online table of " ~ view.ref ~ " must be named online_" ~ view.ref ~ ", which is where `featurekit publish` looks for it") }}
  {%- endif -%}
  {{ return(featurekit.online_rows(view, featurekit.online_as_of())) }}
{% endmacro %}
