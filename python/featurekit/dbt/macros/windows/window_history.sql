{#- Exact point-in-time history of sliding-window aggregates over an events relation: one row
    per key at every instant a value changes, i.e. at each event and at each instant an event
    leaves a window (event time + window length, possibly in the future). The row at feature_ts
    aggregates the events e with feature_ts - window < e <= feature_ts, so the as-of rule (the
    latest row strictly before t) gives the events in [t - window, t) at every t.
    Semantics, arguments and incremental use: window_history.yml. -#}
{% macro window_history(events, keys, timestamp, aggregates, where=none, loaded_at=none, existing=none) %}
{%- set spec = featurekit.window_spec(events, keys, timestamp, aggregates, where, loaded_at) %}
{%- set keys = spec['keys'] %}
with {{ featurekit.window_events(spec, existing) }},

__fk_history as (
{{ adapter.dispatch('window_history', 'featurekit')(spec) }}
)

select
    {%- for key in keys %}
    h.{{ key }},
    {%- endfor %}
    h.feature_ts,
    {%- for aggregate in spec.aggregates %}
    h.{{ aggregate.name }},
    {%- endfor %}
    h.loaded_at
from __fk_history as h
{%- if existing is not none %}
join __fk_changed as c
  on {% for key in keys %}h.{{ key }} = c.{{ key }} and {% endfor %}h.feature_ts >= c.__fk_since
{%- endif %}
{% endmacro %}

{#- Portable: the change instants joined to the events of the longest window before them. -#}
{% macro default__window_history(spec) %}
{%- set keys = spec['keys'] %}
{%- set longest = spec.windows[-1] %}
    with __fk_instants as (
        select {{ keys | join(', ') }}, __fk_ts as feature_ts from __fk_events
        {%- for seconds in spec.windows %}
        union
        select {{ keys | join(', ') }}, {{ featurekit.add_seconds('__fk_ts', seconds) }} from __fk_events
        {%- endfor %}
    )
    select
        {%- for key in keys %}
        i.{{ key }},
        {%- endfor %}
        i.feature_ts,
        {%- for aggregate in spec.aggregates %}
        {{ featurekit.window_aggregate(aggregate, "e.__fk_ts > " ~ featurekit.add_seconds('i.feature_ts', -aggregate.window_seconds)) }} as {{ aggregate.name }},
        {%- endfor %}
        max(case when e.__fk_ts = i.feature_ts then e.__fk_loaded_at end) as loaded_at
    from __fk_instants as i
    left join __fk_events as e
      on {% for key in keys %}e.{{ key }} = i.{{ key }} and {% endfor %}e.__fk_ts <= i.feature_ts
     and e.__fk_ts > {{ featurekit.add_seconds('i.feature_ts', -longest) }}
    group by {% for key in keys %}i.{{ key }}, {% endfor %}i.feature_ts
{% endmacro %}

{#- DuckDB: one sorted stream per key of the events and an expiry marker (no values) at event
    time + each window (union all: cheaper here than unnest of the offsets); a RANGE frame per
    window over integer microseconds (DuckDB's timestamp resolution) makes (t - window, t]
    exact; peers share a frame, so the last row of each instant is kept. fsum/favg add with
    compensated summation: a window's sum does not depend on how the engine groups the
    additions, so incremental and full builds agree bit for bit. -#}
{% macro duckdb__window_history(spec) %}
{%- set partition = spec['keys'] | join(', ') %}
{%- set functions = {'count': 'count', 'count_distinct': 'count', 'sum': 'fsum', 'avg': 'favg', 'min': 'min', 'max': 'max'} %}
    with __fk_stream as (
        select {{ partition }}, epoch_us(__fk_ts) as __fk_us, 1 as __fk_event, __fk_loaded_at
            {%- for column in spec.columns %}, __fk_c{{ loop.index }}{% endfor %}
        from __fk_events
        {%- for seconds in spec.windows %}
        union all
        select {{ partition }}, epoch_us(__fk_ts) + {{ seconds * 1000000 }}, null, null{% for column in spec.columns %}, null{% endfor %}
        from __fk_events
        {%- endfor %}
    )
    select
        {{ partition }},
        make_timestamp(__fk_us) as feature_ts,
        {%- for aggregate in spec.aggregates %}
        {{ functions[aggregate.function] }}({{ 'distinct ' if aggregate.function == 'count_distinct' }}{{ aggregate.input or '__fk_event' }}) over __fk_last_{{ aggregate.window_seconds }} as {{ aggregate.name }},
        {%- endfor %}
        max(__fk_loaded_at) over __fk_now as loaded_at
    from __fk_stream
    window
        {%- for seconds in spec.windows %}
        __fk_last_{{ seconds }} as (partition by {{ partition }} order by __fk_us range between {{ seconds * 1000000 - 1 }} preceding and current row),
        {%- endfor %}
        __fk_now as (partition by {{ partition }} order by __fk_us range between current row and current row),
        __fk_instant as (partition by {{ partition }} order by __fk_us)
    qualify lead(__fk_us) over __fk_instant is distinct from __fk_us
{% endmacro %}
