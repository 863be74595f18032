{#- Resolves feature references ('customer_orders_v1.orders_30d' for one feature,
    'customer_orders_v1' for all of a view's features) into narrowed view specs,
    in the order the views are first named. -#}
{% macro features_spec(references, where='--features') %}
  {%- set all_views = featurekit.feature_views() -%}
  {%- set order = [] -%}
  {%- set wanted = {} -%}
  {%- for reference in references -%}
    {%- set parts = reference.strip().split('.') -%}
    {%- if parts | length > 2 or not parts[0] -%}
      {{ exceptions.raise_compiler_error(where ~ ": '" ~ reference ~ "' is not a feature reference; write view_vN or view_vN.feature") }}
    {%- endif -%}
    {%- if parts[0] not in all_views -%}
      {%- set versions = all_views.values() | selectattr('name', 'equalto', parts[0].rsplit('_v', 1)[0]) | map(attribute='ref') | list -%}
      {{ exceptions.raise_compiler_error(where ~ ": unknown feature view '" ~ parts[0] ~ "'; " ~ ("its versions are " ~ versions | join(', ') if versions else "known views: " ~ all_views.keys() | sort | join(', '))) }}
    {%- endif -%}
    {%- if parts[0] not in order -%}
      {%- do order.append(parts[0]) -%}
      {%- do wanted.update({parts[0]: []}) -%}
    {%- endif -%}
    {%- set names = all_views[parts[0]].features | map(attribute='name') | list -%}
    {%- if parts | length == 2 and parts[1] not in names -%}
      {{ exceptions.raise_compiler_error(where ~ ": feature view " ~ parts[0] ~ " has no feature '" ~ parts[1] ~ "'; its features are " ~ names | join(', ')) }}
    {%- endif -%}
    {%- do wanted[parts[0]].extend(names if parts | length == 1 else [parts[1]]) -%}
  {%- endfor -%}
  {%- set views = [] -%}
  {%- set seen = {} -%}
  {%- for ref in order -%}
    {%- set view = {} -%}
    {%- do view.update(all_views[ref]) -%}
    {%- do view.update({'features': all_views[ref].features | selectattr('name', 'in', wanted[ref]) | list}) -%}
    {%- for feature in view.features -%}
      {%- if feature.name in seen -%}
        {{ exceptions.raise_compiler_error(where ~ ": feature '" ~ feature.name ~ "' comes from both " ~ seen[feature.name] ~ " and " ~ ref ~ "; select only one of them") }}
      {%- endif -%}
      {%- do seen.update({feature.name: ref}) -%}
    {%- endfor -%}
    {%- do views.append(view) -%}
  {%- endfor -%}
  {{ return({'name': none, 'views': views}) }}
{% endmacro %}
