{#- Checks and normalises the arguments of window_history (see its YAML) into the
    spec both implementations work from. Bad arguments fail here, at compile time, with a
    sentence naming the model and what to write instead. -#}
{% macro window_spec(events, keys, timestamp, aggregates, where, loaded_at) %}
  {%- set where_am_i = (model.original_file_path ~ ": " if model is defined else "") ~ "window_history" -%}
  {%- set functions = ['count', 'count_distinct', 'sum', 'avg', 'min', 'max'] -%}
  {%- set fields = ['name', 'function', 'column', 'window'] -%}
  {%- set keys = [keys] if keys is string else (keys or []) -%}
  {%- if events is none or not keys or not timestamp -%}
    {{ exceptions.raise_compiler_error(where_am_i ~ " needs the events relation, keys=[...] and timestamp='<event time column>'") }}
  {%- endif -%}
  {%- if aggregates is string or aggregates is mapping or not aggregates -%}
    {{ exceptions.raise_compiler_error(where_am_i ~ ": aggregates must be a non-empty list such as [{'name': 'orders_30d', 'function': 'count', 'window': '30 days'}]") }}
  {%- endif -%}
  {%- set reserved = keys + ['feature_ts', 'loaded_at'] -%}
  {%- set names = [] -%}
  {%- set columns = [] -%}
  {%- set normalised = [] -%}
  {%- for aggregate in aggregates -%}
    {%- if aggregate is not mapping or not aggregate.get('name') -%}
      {{ exceptions.raise_compiler_error(where_am_i ~ ": aggregate " ~ loop.index ~ " (" ~ aggregate ~ ") needs at least 'name', 'function' and 'window'") }}
    {%- endif -%}
    {%- set about = where_am_i ~ ": aggregate '" ~ aggregate.name ~ "'" -%}
    {%- for field in aggregate if field not in fields -%}
      {{ exceptions.raise_compiler_error(about ~ " has an unknown field '" ~ field ~ "'; its fields are " ~ fields | join(', ') ~ " (filter events with where=)") }}
    {%- endfor -%}
    {%- if aggregate.name in reserved or aggregate.name in names -%}
      {{ exceptions.raise_compiler_error(about ~ ": the name is already taken (by a key, feature_ts, loaded_at or another aggregate); rename it") }}
    {%- endif -%}
    {%- if aggregate.get('function') not in functions -%}
      {{ exceptions.raise_compiler_error(about ~ " has function '" ~ aggregate.get('function') ~ "'; use one of " ~ functions | join(', ')) }}
    {%- endif -%}
    {%- set column = aggregate.get('column') -%}
    {%- if column is none and aggregate.function != 'count' -%}
      {{ exceptions.raise_compiler_error(about ~ ": function " ~ aggregate.function ~ " needs 'column' (a column or SQL expression of the events)") }}
    {%- endif -%}
    {%- if not aggregate.get('window') -%}
      {{ exceptions.raise_compiler_error(about ~ " needs a 'window' such as '30 days' or '15 minutes'") }}
    {%- endif -%}
    {%- if column is not none and column not in columns -%}
      {%- do columns.append(column) -%}
    {%- endif -%}
    {%- do names.append(aggregate.name) -%}
    {%- do normalised.append({
        'name': aggregate.name,
        'function': aggregate.function,
        'column': column,
        'input': none if column is none else '__fk_c' ~ (columns.index(column) + 1),
        'window_seconds': featurekit.interval_seconds(aggregate.window, about),
    }) -%}
  {%- endfor -%}
  {{ return({
      'events': events,
      'keys': keys,
      'timestamp': timestamp,
      'where': where,
      'loaded_at': loaded_at,
      'aggregates': normalised,
      'columns': columns,
      'windows': normalised | map(attribute='window_seconds') | unique | sort | list,
  }) }}
{% endmacro %}
