{#- Parses a duration such as '30 days', '15 minutes' or '1 hour' into whole seconds.
    Durations are fixed lengths (a day is 86400 s), never calendar months, so SQL and the
    online store agree to the microsecond. -#}
{% macro interval_seconds(duration, where) %}
  {%- set units = {'second': 1, 'minute': 60, 'hour': 3600, 'day': 86400, 'week': 604800} -%}
  {%- set parts = (duration | string).strip().lower().split() -%}
  {%- set unit = parts[-1].rstrip('s') if parts | length == 2 else '' -%}
  {%- if unit not in units or not parts[0].isdigit() or parts[0] | int <= 0 -%}
    {{ exceptions.raise_compiler_error(where ~ ": duration '" ~ duration ~ "' is not of the form '<whole number> <second|minute|hour|day|week>s', e.g. '30 days'") }}
  {%- endif -%}
  {{ return(parts[0] | int * units[unit]) }}
{% endmacro %}
