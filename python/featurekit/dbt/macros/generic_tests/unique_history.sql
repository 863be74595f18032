{#- A feature view's history holds at most one row per (keys, feature timestamp): otherwise
    "the latest row strictly before t" is ambiguous. Keys and timestamp come from the view's
    own config.meta.featurekit, so the test cannot drift from the settings. -#}
{% test unique_history(model) %}
  {%- set node = [] -%}
  {%- if execute -%}
    {%- for candidate in graph.nodes.values() if candidate.resource_type == 'model' and candidate.relation_name == model.render() -%}
      {%- do node.append(candidate) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if execute and not node -%}
    {{ exceptions.raise_compiler_error("unique_history: " ~ model ~ " is not a model of this project") }}
  {%- endif -%}
  {%- set spec = featurekit.view_spec(node[0]) if node else {'keys': ['1'], 'timestamp': '1'} -%}
  select {{ spec['keys'] | join(', ') }}, {{ spec.timestamp }}, count(*) as rows_at_this_time
  from {{ model }}
  group by {{ spec['keys'] | join(', ') }}, {{ spec.timestamp }}
  having count(*) > 1
{% endtest %}
