{#- Reads one feature view's settings (config.meta.featurekit and its documented columns)
    into the normalised spec that every other featurekit macro, and the Python layer,
    works from. Bad settings fail here with a sentence naming the model. -#}
{% macro view_spec(node) %}
  {%- set ref_name = node.name ~ ('_v' ~ node.version if node.version is not none else '') -%}
  {%- set meta = (node.config.meta or {}).get('featurekit') or (node.meta or {}).get('featurekit') -%}
  {%- set where = 'feature view ' ~ ref_name ~ ' (' ~ node.original_file_path ~ ')' -%}
  {%- if not meta -%}
    {{ exceptions.raise_compiler_error(where ~ ": config.meta.featurekit is missing") }}
  {%- endif -%}
  {%- set keys = meta.get('keys') -%}
  {%- set keys = [keys] if keys is string else keys -%}
  {%- if not keys or not meta.get('entity') -%}
    {{ exceptions.raise_compiler_error(where ~ ": config.meta.featurekit needs 'entity' and 'keys'") }}
  {%- endif -%}
  {%- set timestamp = meta.get('timestamp', 'feature_ts') -%}
  {%- set available_at = meta.get('available_at') -%}
  {%- set documented = node.columns.keys() | list -%}
  {%- for column in keys + [timestamp] + ([available_at] if available_at else []) -%}
    {%- if column not in documented -%}
      {{ exceptions.raise_compiler_error(where ~ ": column '" ~ column ~ "' is named in config.meta.featurekit but not documented under columns:") }}
    {%- endif -%}
  {%- endfor -%}
  {%- set fill = meta.get('fill') or {} -%}
  {%- set features = [] -%}
  {%- for column in documented if column not in keys + [timestamp, available_at] -%}
    {%- do features.append({'name': column, 'kind': 'column', 'source': column, 'fill': fill.get(column)}) -%}
  {%- endfor -%}
  {%- set units = {'second': 1, 'minute': 60, 'hour': 3600, 'day': 86400, 'week': 604800} -%}
  {%- for name, rule in (meta.get('request_time') or {}).items() -%}
    {%- if rule.get('since') not in documented or rule.get('unit') not in units -%}
      {{ exceptions.raise_compiler_error(where ~ ": request_time feature '" ~ name ~ "' needs 'since: <documented timestamp column>' and 'unit: second|minute|hour|day|week'") }}
    {%- endif -%}
    {%- do features.append({'name': name, 'kind': 'request_time', 'source': rule['since'], 'unit': rule['unit'], 'unit_seconds': units[rule['unit']], 'fill': fill.get(name)}) -%}
  {%- endfor -%}
  {%- set names = features | map(attribute='name') | list -%}
  {%- for column in fill if column not in names -%}
    {{ exceptions.raise_compiler_error(where ~ ": fill names '" ~ column ~ "', which is not one of its features (" ~ names | join(', ') ~ ")") }}
  {%- endfor -%}
  {%- if not features -%}
    {{ exceptions.raise_compiler_error(where ~ ": document its feature columns under columns:") }}
  {%- endif -%}
  {%- set ttl = meta.get('ttl') -%}
  {#- A window history's expiry rows record no new data: freshness reads its event rows. -#}
  {%- set windowed = [] -%}
  {%- for macro_id in node.depends_on.macros if macro_id.endswith('.window_history') -%}
    {%- do windowed.append(macro_id) -%}
  {%- endfor -%}
  {{ return({
      'ref': ref_name,
      'name': node.name,
      'version': node.version,
      'latest_version': node.latest_version,
      'unique_id': node.unique_id,
      'relation': node.relation_name,
      'entity': meta['entity'],
      'keys': keys,
      'timestamp': timestamp,
      'available_at': available_at,
      'ttl': ttl,
      'ttl_seconds': featurekit.interval_seconds(ttl, where) if ttl else none,
      'windowed': windowed | length > 0,
      'freshness': meta.get('freshness') or {},
      'owner': meta.get('owner') or node.group,
      'description': node.description,
      'features': features,
  }) }}
{% endmacro %}
