{#- Whether a row of feature view `view` is data known at `cutoff` (a SQL timestamp
    expression), or strictly before it: its feature timestamp (and availability, when the
    view declares it) at or before the cutoff, and, in a window history, an event row (an
    expiry row records no new data). Freshness and a snapshot's newest served data both
    take the greatest feature timestamp of these rows. -#}
{% macro data_row(view, cutoff, strictly_before=false) %}
  {%- set known = '<' if strictly_before else '<=' -%}
  {%- set parts = [view.timestamp ~ ' ' ~ known ~ ' ' ~ cutoff] -%}
  {%- if view.available_at -%}
    {%- do parts.append(view.available_at ~ ' ' ~ known ~ ' ' ~ cutoff) -%}
  {%- endif -%}
  {%- if view.windowed -%}
    {%- do parts.append('loaded_at is not null') -%}
  {%- endif -%}
  {{ return('(' ~ parts | join(' and ') ~ ')') }}
{% endmacro %}
