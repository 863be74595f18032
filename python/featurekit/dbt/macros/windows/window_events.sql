{#- The events a window history is computed from, as CTEs: __fk_events (keys, __fk_ts,
    __fk_loaded_at, __fk_c1.. = the aggregated columns), after the `where` filter.

    With `existing` (the view's current history, on an incremental run) also __fk_changed
    (keys, __fk_since): the keys with events loaded after the newest load time in the history,
    and the earliest such event time. Only their rows from __fk_since on can change, and those
    rows only look back one longest window, so __fk_events keeps just those keys' events from
    __fk_since minus the longest window on. -#}
{% macro window_events(spec, existing) %}
{%- set keys = spec['keys'] %}
{%- if existing is none %}
__fk_events as (
{{ featurekit.window_source(spec) }}
)
{%- else %}
{#- The source is written out in each CTE rather than shared as one: a CTE read twice is
    materialized whole (every event), and the filters on load and event time could no
    longer skip the source's old row groups. -#}
__fk_watermark as (
    {#- one plain comparison (no "or watermark is null"): so it can skip the source's row
        groups loaded before the watermark. An empty history takes every event that has a
        load time; an event without one is never new (a full rebuild takes it in). -#}
    select coalesce({{ featurekit.newest(existing, 'loaded_at') }}, cast('0001-01-01' as timestamp)) as __fk_loaded_at
),
__fk_changed as (
    select {{ keys | join(', ') }}, min(__fk_ts) as __fk_since
    from (
{{ featurekit.window_source(spec) }}
    ) as s
    where __fk_loaded_at > (select __fk_loaded_at from __fk_watermark)
    group by {{ keys | join(', ') }}
),
__fk_events as (
    select s.*
    from (
{{ featurekit.window_source(spec) }}
    ) as s
    join __fk_changed as c
      on {% for key in keys %}s.{{ key }} = c.{{ key }} and {% endfor %}s.__fk_ts >= {{ featurekit.add_seconds('c.__fk_since', -spec.windows[-1]) }}
    where s.__fk_ts >= {{ featurekit.add_seconds('(select min(__fk_since) from __fk_changed)', -spec.windows[-1]) }}
)
{%- endif %}
{%- endmacro %}

{#- The events relation as keys, __fk_ts, __fk_loaded_at and __fk_c1.., after `where`. -#}
{% macro window_source(spec) %}
    select
        {%- for key in spec['keys'] %}
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
{%- endmacro %}
