{#- The point-in-time join (the contract in DESIGN.md): for each label row (keys, t) and each
    view, the view row with the greatest feature timestamp among rows recorded strictly before
    t (or, when the view has an availability column, available strictly before t); then ttl,
    request-time features and fill (featurekit.feature_columns).

    labels          a relation or table name holding the label rows
    views           view specs from featurekit.feature_set_spec / featurekit.features_spec
    timestamp_column  the label time column (a timestamp; with a time zone, converted to UTC)
    label_columns   label columns to pass through, in order (default: all of `labels`)
    row_column      a column numbering the label rows uniquely, giving the output order
                    (default: the order rows are read)

    Output: the label columns, then per view its features and <view>__feature_ts; one row
    per label row, in label order, duplicates kept. One statement: the steps of
    featurekit.point_in_time_steps as common table expressions. -#}
{% macro point_in_time_join(labels, views, timestamp_column='label_ts', label_columns=none, row_column=none) %}
  {%- set plan = featurekit.point_in_time_steps(labels, views, timestamp_column, label_columns, row_column) -%}
  {%- set ctes = [] -%}
  {%- for name, sql in plan.steps -%}
    {%- do ctes.append(name ~ " as (" ~ sql ~ "\n)") -%}
  {%- endfor -%}
  {{ return("with " ~ ctes | join("\n, ") ~ "\n" ~ plan.select) }}
{% endmacro %}

{#- The same join as named steps: {'steps': [[name, sql], ...], 'select': sql}. Each step reads
    only `labels` and earlier steps by name, and `select` gives the output from them. Running
    the steps one by one into temp tables (as `featurekit train-set` does) gives the same rows
    as the single statement, but holds only one view's join state at a time. Each view's step
    adds its match to every row of the step before (__fk_joined_<n>), so the output needs no
    join back to the label rows. ordered=false leaves the order to the caller, which then
    orders by __fk_row itself (train-set, reading the rows out of another warehouse: its
    sort there, a shuffle of every row on Spark, bought nothing). -#}
{% macro point_in_time_steps(labels, views, timestamp_column='label_ts', label_columns=none, row_column=none, ordered=true) %}
  {%- set columns = [] -%}
  {%- if label_columns is none -%}
    {%- set columns = adapter.get_columns_in_relation(labels) -%}
    {%- set label_columns = columns | map(attribute='name') | list -%}
  {%- endif -%}
  {%- set label_time = featurekit.label_time(timestamp_column, columns) -%}
  {%- set steps = [['__fk_label_rows', featurekit.label_rows(labels, label_time, row_column)]] -%}
  {%- for view in views -%}
    {%- do steps.append(['__fk_joined_' ~ loop.index, adapter.dispatch('view_join', 'featurekit')(steps[-1][0], view, loop.index)]) -%}
  {%- endfor -%}
  {{ return({'steps': steps, 'select': featurekit.join_select(views, label_columns, steps[-1][0], ordered)}) }}
{% endmacro %}

{#- The feature view's columns a join needs: keys, feature timestamp and feature sources. -#}
{% macro fetched_columns(view) %}
  {%- set columns = [] -%}
  {%- for feature in view.features if feature.source not in columns -%}
    {%- do columns.append(feature.source) -%}
  {%- endfor -%}
  {{ return(columns) }}
{% endmacro %}

{#- The label rows with their row number __fk_row and label time __fk_ts (`labels` may be a
    subquery, which PostgreSQL requires to be named). -#}
{% macro label_rows(labels, label_time, row_column) %}
    select
        *,
        {{ row_column or adapter.dispatch('read_order', 'featurekit')() }} as __fk_row,
        {{ label_time }} as __fk_ts
    from {{ labels }} as __fk_label_source
{%- endmacro %}

{#- The label rows numbered in the order they are read. -#}
{% macro default__read_order() %}row_number() over (){% endmacro %}

{#- Spark's row_number needs an ordered window: the ids increase in read order. -#}
{% macro spark__read_order() %}row_number() over (order by monotonically_increasing_id()){% endmacro %}

{#- The output from the last step `rows`: the label columns, then each view's features, in
    label order (unless not `ordered`). -#}
{% macro join_select(views, label_columns, rows, ordered=true) %}
select
    {%- for column in label_columns %}
    l.{{ adapter.quote(column) }},
    {%- endfor %}
    {%- for view in views %}
    {%- set outer = loop %}
    {%- for column in featurekit.feature_columns(view, 'l.__fk_' ~ loop.index ~ '_', 'l.__fk_ts_' ~ loop.index, 'l.__fk_ts') %}
    {{ column }}{{ ',' if not (outer.last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
from {{ rows }} as l
{%- if ordered %}
order by l.__fk_row
{%- endif %}
{%- endmacro %}

{#- One view's step: every row of `rows` (label rows with __fk_row, keys and __fk_ts, and
    earlier views' columns), plus the row of the view whose feature timestamp is the greatest
    among rows recorded (or available) strictly before the label time, or nulls: for the
    view's place n in the join, its feature timestamp __fk_ts_<n> and fetched columns
    __fk_<n>_<column>. -#}

{#- Portable: the last view row carried forward in one sorted pass, O(n log n), never a join
    of each label to every earlier row. The label rows and the view's timeline rows (keys and
    times only) form one stream per key, ordered by time with a label before a view row at an
    equal instant (so the rule stays strictly before); the running greatest view time at each
    label is the instant of the row it takes, which it then joins by (keys, instant): the
    timeline is unique on them (the history contract; the unique_history test). The
    timeline is read twice rather than shared: a shared one is materialized, every row of it. -#}
{% macro default__view_join(rows, view, n) %}
{%- set keys = view['keys'] %}
{%- set fetched = featurekit.fetched_columns(view) %}
    with __fk_stream_{{ n }} as (
        select {% for key in keys %}{{ key }}, {% endfor %}__fk_ts as __fk_at, 0 as __fk_kind, cast(__fk_row as bigint) as __fk_row
        from {{ rows }}
        where __fk_ts is not null
        union all
        select {% for key in keys %}{{ key }}, {% endfor %}__fk_at, 1, null
        from (
{{ featurekit.view_timeline(view, []) }}
        ) as __fk_instants
    ),
    __fk_matched_{{ n }} as (
        select
            {% for key in keys %}{{ key }}, {% endfor %}__fk_row, __fk_kind,
            max(case when __fk_kind = 1 then __fk_at end) over (
                partition by {{ keys | join(', ') }} order by __fk_at, __fk_kind
                rows between unbounded preceding and current row
            ) as __fk_match_at
        from __fk_stream_{{ n }}
    )
    select r.*, f.__fk_feature_ts as __fk_ts_{{ n }}{% for column in fetched %}, f.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from {{ rows }} as r
    left join __fk_matched_{{ n }} as m
      on m.__fk_kind = 0 and m.__fk_row = r.__fk_row
    left join (
{{ featurekit.view_timeline(view, fetched) }}
    ) as f
      on {% for key in keys %}f.{{ key }} = m.{{ key }} and {% endfor %}f.__fk_at = m.__fk_match_at
{%- endmacro %}

{#- PostgreSQL: where the view has a btree index led by its keys and feature timestamp
    (featurekit.join_index_sql found it; feature views get one by construction, see
    view_index.sql), each label takes the view's last row strictly before it through that
    index: O(L log R) instead of the sorted pass's O((L + R) log(L + R)), which reads every
    view row (medium bench, R = 4L: 4.9 -> see bench/README.md). Labels are visited in (keys,
    time) order, so consecutive descents touch the same index pages. `with ties` keeps every
    row at the greatest instant, as default__'s join by (keys, instant) does, so a view that
    repeats one still gives a label two rows (and train-set's error). A view with an
    availability column, or without the index, takes the sorted pass: its answer is a row of
    the timeline, not of the table. -#}
{% macro postgres__view_join(rows, view, n) %}
{%- if view.available_at or not view.get('join_index') -%}
  {{ return(featurekit.default__view_join(rows, view, n)) }}
{%- endif -%}
{%- set keys = view['keys'] %}
{%- set fetched = featurekit.fetched_columns(view) %}
    select r.*, f.{{ view.timestamp }} as __fk_ts_{{ n }}{% for column in fetched %}, f.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from (select * from {{ rows }} order by {% for key in keys %}{{ key }}, {% endfor %}__fk_ts) as r
    left join lateral (
        select v.{{ view.timestamp }}{% for column in fetched if column != view.timestamp %}, v.{{ column }}{% endfor %}
        from {{ view.relation }} as v
        where {% for key in keys %}v.{{ key }} = r.{{ key }} and {% endfor %}v.{{ view.timestamp }} < r.__fk_ts
        order by v.{{ view.timestamp }} desc
        fetch first 1 rows with ties
    ) as f on true
{%- endmacro %}

{#- Spark: where the session allows it (view.asof_join, featurekit.with_join_plans), Spark's
    own sort-merge ASOF join over the view's timeline: strictly before, unique on (keys,
    instant), so exact with an availability column too; it reads `rows` once and sorts
    once per side (measured: see bench/README.md, "Training sets on Spark"). Else the same
    sorted pass as default__, reading `rows` once: Spark inlines a CTE wherever it is
    named, so a step that names the step before twice (default__: the stream and the join
    back) doubles the work of every earlier step: 6 views, 2^6 times the first step (the
    example's training model: 36 s -> 200 s). Here each label row travels whole, as a
    struct, through the stream, and the last view row before it (a struct too, so a row
    whose columns are null still counts) is carried forward by last(..., true) over the
    stream ordered by time, labels before view rows at an equal instant. -#}
{% macro spark__view_join(rows, view, n) %}
{%- set keys = view['keys'] %}
{%- set fetched = featurekit.fetched_columns(view) %}
{%- if view.get('asof_join') %}
    select r.*, f.__fk_feature_ts as __fk_ts_{{ n }}{% for column in fetched %}, f.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from {{ rows }} as r
    left asof join (
{{ featurekit.view_timeline(view, fetched) }}
    ) as f
      match_condition (r.__fk_ts > f.__fk_at)
      on {% for key in keys %}r.{{ key }} = f.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
{%- else %}
    with __fk_stream_{{ n }} as (
        select {% for key in keys %}{{ key }}, {% endfor %}__fk_ts as __fk_at, 0 as __fk_kind, struct(r.*) as __fk_label,
            null as __fk_best
        from {{ rows }} as r
        union all
        select {% for key in keys %}{{ key }}, {% endfor %}__fk_at, 1, null,
            named_struct('__fk_feature_ts', __fk_feature_ts{% for column in fetched %}, '{{ column }}', {{ column }}{% endfor %})
        from (
{{ featurekit.view_timeline(view, fetched) }}
        ) as __fk_timeline
        where {% for key in keys %}{{ key }} is not null{{ ' and ' if not loop.last }}{% endfor %}
    ),
    __fk_carried_{{ n }} as (
        select
            __fk_kind, __fk_label,
            last(__fk_best, true) over (
                partition by {{ keys | join(', ') }} order by __fk_at, __fk_kind
                rows between unbounded preceding and current row
            ) as __fk_best
        from __fk_stream_{{ n }}
    )
    select __fk_label.*, __fk_best.__fk_feature_ts as __fk_ts_{{ n }}{% for column in fetched %}, __fk_best.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from __fk_carried_{{ n }}
    where __fk_kind = 0
{%- endif %}
{%- endmacro %}

{#- DuckDB: per key, the cheaper of two plans. A key with few label rows (at most 8) joins
    its view rows by hash and keeps the latest before each label time (arg_max over a struct:
    the whole row, nulls included): about labels x rows of the key pairs, bounded by 8x the
    view's rows. The other keys use a native ASOF join over only their view rows: ASOF sorts
    what it reads, about 0.3 us per view row, so it pays off where many labels share a key's
    rows (measured break-even: 8-16 labels per key). A window history (4 rows per event, 1M
    labels): 8 -> 3 CPU s; 2M labels on 20M plain rows: 4.8 -> 3.7 CPU s. Both plans read the
    view through its visibility timeline (featurekit.view_timeline). -#}
{% macro duckdb__view_join(rows, view, n) %}
{%- set keys = view['keys'] %}
{%- set fetched = featurekit.fetched_columns(view) %}
{%- set on_keys %}{% for key in keys %}r.{{ key }} = f.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}{% endset %}
{%- set feature_ts = '__fk_feature_ts' if view.available_at else '__fk_at' %}
    with __fk_crowded_{{ n }} as (
        select {{ keys | join(', ') }} from {{ rows }} group by all having count(*) > 8
    ),
    __fk_few_{{ n }} as (
        select * from {{ rows }} as r anti join __fk_crowded_{{ n }} as f on {{ on_keys }}
    ),
    __fk_many_{{ n }} as (
        select * from {{ rows }} as r semi join __fk_crowded_{{ n }} as f on {{ on_keys }}
    ),
    __fk_latest_{{ n }} as (
        select
            r.__fk_row,
            arg_max(
                struct_pack(__fk_ts := f.{{ feature_ts }}{% for column in fetched %}, {{ column }} := f.{{ column }}{% endfor %}),
                f.__fk_at
            ) as __fk_best
        from __fk_few_{{ n }} as r
        join (
{{ featurekit.view_timeline(view, fetched) }}
        ) as f
          on {{ on_keys }} and f.__fk_at < r.__fk_ts
        group by r.__fk_row
    )
    select r.*, b.__fk_best.__fk_ts as __fk_ts_{{ n }}{% for column in fetched %}, b.__fk_best.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from __fk_few_{{ n }} as r
    left join __fk_latest_{{ n }} as b on b.__fk_row = r.__fk_row
    union all
    select r.*, f.{{ feature_ts }} as __fk_ts_{{ n }}{% for column in fetched %}, f.{{ column }} as __fk_{{ n }}_{{ column }}{% endfor %}
    from __fk_many_{{ n }} as r
    asof left join (
        select t.* from (
{{ featurekit.view_timeline(view, fetched) }}
        ) as t
        semi join __fk_crowded_{{ n }} as k
          on {% for key in keys %}t.{{ key }} = k.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
    ) as f
      on {{ on_keys }} and r.__fk_ts > f.__fk_at
{%- endmacro %}
