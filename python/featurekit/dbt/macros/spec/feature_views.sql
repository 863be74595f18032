{#- Every model with config.meta.featurekit, keyed by its reference name
    (customer_orders_v1 for a versioned model, the model name otherwise). -#}
{% macro feature_views() %}
  {%- set views = {} -%}
  {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
    {%- if (node.config.meta or {}).get('featurekit') or (node.meta or {}).get('featurekit') -%}
      {%- set spec = featurekit.view_spec(node) -%}
      {%- do views.update({spec.ref: spec}) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(views) }}
{% endmacro %}
