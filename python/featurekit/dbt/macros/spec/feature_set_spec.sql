{#- Resolves a feature set (a dbt exposure of type ml) into the feature views it pins, each
    narrowed to the features listed in the exposure's config.meta.featurekit.features when
    that list is given. Views come in depends_on order, features in each view's own order. -#}
{% macro feature_set_spec(name) %}
  {%- set found = [] -%}
  {%- set known = [] -%}
  {%- for exposure in graph.exposures.values() if exposure.type == 'ml' -%}
    {%- do known.append(exposure.name) -%}
    {%- if exposure.name == name -%}{%- do found.append(exposure) -%}{%- endif -%}
  {%- endfor -%}
  {%- if not found -%}
    {{ exceptions.raise_compiler_error("unknown feature set '" ~ name ~ "'; known feature sets: " ~ (known | sort | join(', ') or 'none (declare an exposure of type ml)')) }}
  {%- endif -%}
  {%- set exposure = found[0] -%}
  {%- set where = "feature set " ~ name ~ " (" ~ exposure.original_file_path ~ ")" -%}
  {%- set all_views = featurekit.feature_views() -%}
  {%- set refs = [] -%}
  {%- for r in exposure.refs -%}
    {%- set r_name = r.name if r is mapping else r[0] -%}
    {%- set r_version = r.version if r is mapping else none -%}
    {%- set matches = all_views.values() | selectattr('name', 'equalto', r_name) | list -%}
    {%- if not matches -%}
      {{ exceptions.raise_compiler_error(where ~ ": ref('" ~ r_name ~ "') is not a feature view (no config.meta.featurekit)") }}
    {%- elif r_version is none and matches[0].version is not none -%}
      {{ exceptions.raise_compiler_error(where ~ ": ref('" ~ r_name ~ "') must pin a version, e.g. ref('" ~ r_name ~ "', v=" ~ matches[0].latest_version ~ "), so that a new release cannot change the model's features") }}
    {%- endif -%}
    {%- do refs.append(r_name ~ ('_v' ~ r_version if r_version is not none else '')) -%}
  {%- endfor -%}
  {%- set meta = (exposure.config.meta or {}).get('featurekit') or (exposure.meta or {}).get('featurekit') or {} -%}
  {%- set selected = meta.get('features') or refs -%}
  {%- for item in selected if item.split('.')[0] not in refs -%}
    {{ exceptions.raise_compiler_error(where ~ ": features lists '" ~ item ~ "' but depends_on does not pin " ~ item.split('.')[0] ~ " (it pins " ~ refs | join(', ') ~ ")") }}
  {%- endfor -%}
  {%- set spec = featurekit.features_spec(selected, where) -%}
  {%- do spec.update({'name': name, 'owner': exposure.owner, 'description': exposure.description}) -%}
  {{ return(spec) }}
{% endmacro %}
