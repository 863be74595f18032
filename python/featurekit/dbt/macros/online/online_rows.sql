{#- The rows of one feature view that the online store needs to answer any request at or
    after `as_of` (a SQL timestamp expression) exactly as the point-in-time join would:
    per key, the timeline row the join at `as_of` picks, plus every timeline row that becomes
    visible at or after `as_of` (future-dated rows such as window expiries). The online lookup
    is then "the stored row with the greatest __fk_at before the request time"; ttl,
    request-time features and fill are applied at request time from the view spec.
    Columns: featurekit.online_columns. The as-of time is recorded once, in the online
    table's build state (featurekit_online_materialization.sql). -#}
{% macro online_rows(view, as_of) %}
{%- set keys = view['keys'] %}
{%- set columns = featurekit.online_columns(view) %}
with __fk_timeline as (
{{ featurekit.view_timeline(view, featurekit.fetched_columns(view)) }}
),

__fk_current as (
    select
        {{ columns | join(', ') }},
        row_number() over (partition by {{ keys | join(', ') }} order by __fk_at desc) as __fk_rank
    from __fk_timeline
    where __fk_at < {{ as_of }}
)

select {{ columns | join(', ') }}
from __fk_current
where __fk_rank = 1
union all
select {{ columns | join(', ') }}
from __fk_timeline
where __fk_at >= {{ as_of }}
{% endmacro %}
