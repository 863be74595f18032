{#- A training-set model: `select * from ({{ featurekit.training_set(ref('labels'), 'churn_model') }})`.
    dbt only knows a model's parents from the refs it sees when parsing, so the model must also
    name each pinned view (-- depends_on: {{ ref('customer_orders', v=1) }}); this macro checks
    that it does instead of letting dbt build it before its views. -#}
{% macro training_set(labels, feature_set=none, features=none, timestamp_column='label_ts') %}
  {%- if not execute -%}
    {{ return('select 1 as __fk_parsing') }}
  {%- endif -%}
  {%- if (feature_set is none) == (features is none) -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": training_set needs exactly one of feature_set= or features=") }}
  {%- endif -%}
  {%- set spec = featurekit.feature_set_spec(feature_set) if feature_set else featurekit.features_spec(features) -%}
  {%- for view in spec.views if view.unique_id not in model.depends_on.nodes -%}
    {{ exceptions.raise_compiler_error(model.original_file_path ~ ": add the line  -- depends_on: {{ ref('" ~ view.name ~ "'" ~ (", v=" ~ view.version if view.version is not none else "") ~ ") }}  so that dbt builds " ~ view.ref ~ " first") }}
  {%- endfor -%}
  {{ return(featurekit.point_in_time_join(labels, featurekit.with_join_plans(spec.views), timestamp_column)) }}
{% endmacro %}
