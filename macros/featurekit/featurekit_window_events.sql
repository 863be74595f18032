{#- The events a window history is computed from, as CTEs: __fk_events (keys, __fk_ts,
    __fk_loaded_at, __fk_c1.. = the aggregated columns), after the `where` filter.

    With `existing` (the view's current history, on an incremental run) also __fk_changed
    (keys, __fk_since): the keys with events loaded after the newest load time in the history,
    and the earliest such event time. Only their rows from __fk_since on can change, and those
    rows only look back one longest window, so __fk_events keeps just those keys' events from
    __fk_since minus the longest window on. -#}
{% macro featurekit_window_events(spec, existing) %}
{%- set keys = spec['keys'] %}
__fk_source as (
    select
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}
        cast({{ spec.timestamp }} as timestamp) as __fk_ts,
        {{ spec.loaded_at or spec.timestamp }} as __fk_loaded_at
        {%- for column in spec.columns %},
        {{ column }} as __fk_c{{ loop.index }}
        {%- endfor %}
    from {{ spec.events }}
    {%- if spec.where %}
    where {{ spec.where }}
    {%- endif %}
),
{%- if existing is none %}
__fk_events as (
    select * from __fk_source
)
{%- else %}
__fk_watermark as (
    select max(loaded_at) as __fk_loaded_at from {{ existing }}
),
__fk_changed as (
    select {{ keys | join(', ') }}, min(__fk_ts) as __fk_since
    from __fk_source
    where __fk_loaded_at > (select __fk_loaded_at from __fk_watermark)
       or (select __fk_loaded_at from __fk_watermark) is null
    group by {{ keys | join(', ') }}
),
__fk_events as (
    select s.*
    from __fk_source as s
    join __fk_changed as c
      on {% for key in keys %}s.{{ key }} = c.{{ key }} and {% endfor %}s.__fk_ts >= {{ featurekit_add_seconds('c.__fk_since', -spec.windows[-1]) }}
)
{%- endif %}
{%- endmacro %}
