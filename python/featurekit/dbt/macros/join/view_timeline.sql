{#- A feature view as its visibility timeline: rows (keys, __fk_at, __fk_feature_ts, fetched
    columns) where __fk_at is the instant the row becomes the as-of answer. Without an
    availability column that is the row's own feature timestamp. With one, at each availability
    instant the row with the greatest feature timestamp among all rows available by then (a
    late-arriving older row never hides a newer one). The point-in-time join and the online
    tables both read views through this one definition. -#}
{% macro view_timeline(view, fetched) %}
  {{ return(adapter.dispatch('view_timeline', 'featurekit')(view, fetched)) }}
{% endmacro %}

{#- Portable: each availability instant joined to the rows available by then, best first.
    `view.relation` may be a subquery (an online table's incremental build): every use is aliased. -#}
{% macro default__view_timeline(view, fetched) %}
{%- set keys = view['keys'] %}
{%- if view.available_at %}
    select {% for key in keys %}{{ key }}, {% endfor %}__fk_at, __fk_feature_ts{% for column in fetched %}, {{ column }}{% endfor %}
    from (
        select
            {% for key in keys %}i.{{ key }}, {% endfor %}i.__fk_at,
            v.{{ view.timestamp }} as __fk_feature_ts,
            {%- for column in fetched %}
            v.{{ column }},
            {%- endfor %}
            row_number() over (partition by {% for key in keys %}i.{{ key }}, {% endfor %}i.__fk_at order by v.{{ view.timestamp }} desc) as __fk_rank
        from (select distinct {% for key in keys %}{{ key }}, {% endfor %}{{ view.available_at }} as __fk_at from {{ view.relation }} as __fk_v) as i
        join {{ view.relation }} as v
          on {% for key in keys %}v.{{ key }} = i.{{ key }} and {% endfor %}v.{{ view.available_at }} <= i.__fk_at
    ) as __fk_ranked
    where __fk_rank = 1
{%- else %}
    select
        {% for key in keys %}{{ key }}, {% endfor %}{{ view.timestamp }} as __fk_at,
        {{ view.timestamp }} as __fk_feature_ts{% for column in fetched %}, {{ column }}{% endfor %}
    from {{ view.relation }} as __fk_v
{%- endif %}
{% endmacro %}

{#- DuckDB: arg_max over a struct takes the whole latest row (plain arg_max skips nulls). -#}
{% macro duckdb__view_timeline(view, fetched) %}
{%- if view.available_at %}
    select
        {% for key in view['keys'] %}{{ key }}, {% endfor %}__fk_at,
        __fk_best.__fk_feature_ts,
        {%- for column in fetched %}
        __fk_best.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select
            {% for key in view['keys'] %}{{ key }}, {% endfor %}{{ view.available_at }} as __fk_at,
            arg_max(
                struct_pack(__fk_feature_ts := {{ view.timestamp }}{% for column in fetched %}, {{ column }} := {{ column }}{% endfor %}),
                {{ view.timestamp }}
            ) over (
                partition by {{ view['keys'] | join(', ') }} order by {{ view.available_at }}
                range between unbounded preceding and current row
            ) as __fk_best
        from {{ view.relation }}
    )
    qualify row_number() over (partition by {{ view['keys'] | join(', ') }}, __fk_at) = 1
{%- else %}
    select
        {% for key in view['keys'] %}{{ key }}, {% endfor %}{{ view.timestamp }} as __fk_at,
        {{ view.timestamp }} as __fk_feature_ts,
        {%- for column in fetched %}
        {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ view.relation }}
{%- endif %}
{% endmacro %}
