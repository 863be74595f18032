{#- Online tables (models/online/, materialized: featurekit_online) rebuilt incrementally:
    only the keys whose feature view holds rows loaded since the previous build are
    recomputed, so a refresh costs in proportion to the new data, not to the history.

    The online rows of a key (featurekit.online_rows) depend only on that key's view rows and
    the as-of time. Between two builds at as-of times A0 <= A1:
    - a key with new view rows: its rows are deleted and computed again at A1;
    - any other key: its view rows are unchanged, so its rows at A1 follow from the stored
      ones (the current row at A0 and every row from A0 on): drop those that a row becoming
      visible in [A0, A1) now hides.
    The result equals a full build at A1 (tests/test_online_incremental.py proves it).

    "New rows" are found by a load watermark W, the greatest value of the view's change
    column at the previous build: its availability column, else its loaded_at column (the
    load time every featurekit window view and the example views carry). This is the
    contract the views' own incremental builds rely on: each load's times are later than
    every earlier load's, and a build touches only keys with rows loaded after the
    watermark. A view without either column is rebuilt in full every time.

    A view built again from scratch (to take in restated, deleted or late events older than
    its watermark) breaks that contract. featurekit_history marks the view's table with a
    generation that only a new table loses (featurekit.history_generation): an online table
    whose view carried one at the last build is rebuilt in full when it now carries another
    or none, and reads nothing up to W when it carries the same. For a view without one (an
    engine without table comments, a comment that dbt's persist_docs writes) the count and
    sum of the change column over its rows loaded up to W, kept from the last build, must be
    equal, which reads them, and misses a rebuild that restates values under the same load
    times. The online table is also rebuilt in full on a changed definition of the view (its
    SQL or a macro it reaches in any branch, featurekit.reached_macros: a view rebuilt with
    new logic over the same loads holds new values under the same load times), an earlier
    as-of time, a missing state, columns that are not those it would now be built with (a
    feature column documented since) or --full-refresh.
    The state (the as-of time, which publish records; watermark, count, sum, definition,
    the view's generation, and a window history's newest data for publish) is a one-row table
    <online table>__fk_state, written by every build.

    Each build also checks that no (keys, feature timestamp) repeats, since the
    point-in-time pick among such rows is arbitrary: a full build over the whole view, an
    incremental one over the rows loaded since the last (the view's own
    unique_history test, over the whole history, runs in `dbt build`). -#}
{% materialization featurekit_online, default %}
  {%- set view = featurekit.feature_views()[model.name[7:]] -%}
  {%- set as_of = featurekit.online_as_of() -%}
  {%- set target = this.incorporate(type='table') -%}
  {%- set existing = load_cached_relation(this) -%}
  {%- set state = this.incorporate(path={'identifier': this.identifier ~ '__fk_state'}, type='table') -%}
  {%- set plan = featurekit.online_plan(view, as_of, existing, state) -%}

  {{ run_hooks(pre_hooks) }}
  {%- set in_place = plan.incremental and featurekit.online_in_place() -%}
  {%- if plan.incremental -%}
    {%- set changed = featurekit.online_changed_keys(view, plan.column, plan.watermark) -%}
    {{ featurekit.online_check_unique(view, plan.column ~ ' > ' ~ plan.watermark) }}
    {%- set recomputed = this.incorporate(path={'identifier': this.identifier ~ '__fk_recomputed'}, type='table') -%}
    {#- computed first: for a window history it reads the changed keys' old online rows -#}
    {%- set recompute = get_create_table_as_sql(False, recomputed, featurekit.online_rows(featurekit.online_restricted(view, changed, target, plan), as_of)) -%}
  {%- else -%}
    {{ featurekit.online_check_unique(view, none) }}
  {%- endif -%}
  {%- if in_place -%}
    {#- created and dropped in this node's one transaction: never left behind -#}
    {% call statement('main') %}
      {{ recompute }};
      {{ featurekit.online_delete_keys(target, view['keys'], changed) }};
      {{ featurekit.online_delete_hidden(target, view['keys'], plan.as_of, as_of) }};
      insert into {{ target }} select * from {{ recomputed }}
    {% endcall %}
    {{ drop_relation_if_exists(recomputed) }}
  {%- else -%}
    {%- set intermediate = make_intermediate_relation(target) -%}
    {%- set backup = make_backup_relation(target, 'table') -%}
    {{ drop_relation_if_exists(intermediate) }}
    {{ drop_relation_if_exists(backup) }}
    {%- if plan.incremental -%}
      {#- an engine without DELETE: the rows the in-place path keeps, and the recomputed
          ones, into a new table that replaces the old -#}
      {{ drop_relation_if_exists(recomputed) }}
      {% call statement('featurekit_online_recompute') %}{{ recompute }}{% endcall %}
      {% call statement('main') %}
        {{ get_create_table_as_sql(False, intermediate, featurekit.online_kept_rows(target, view['keys'], changed, plan.as_of, as_of) ~ ' union all select * from ' ~ recomputed) }}
      {% endcall %}
      {{ drop_relation_if_exists(recomputed) }}
    {%- else -%}
      {% call statement('main') %}
        {{ get_create_table_as_sql(False, intermediate, sql) }}
      {% endcall %}
    {%- endif -%}
    {%- if existing is not none -%}
      {{ adapter.rename_relation(existing, backup) }}
    {%- endif -%}
    {{ adapter.rename_relation(intermediate, target) }}
  {%- endif -%}
  {{ featurekit.online_save_state(state, plan, as_of) }}
  {{ run_hooks(post_hooks) }}
  {{ adapter.commit() }}
  {%- if not in_place -%}
    {{ drop_relation_if_exists(backup) }}
  {%- endif -%}
  {{ return({'relations': [target]}) }}
{% endmaterialization %}

{#- The as-of time of this run's online tables (a SQL timestamp expression):
    var('featurekit_as_of') (a UTC time), by default the time the dbt run started. -#}
{% macro online_as_of() %}
  {%- set as_of = var('featurekit_as_of', none) or run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') -%}
  {{ return("cast('" ~ as_of ~ "' as timestamp)") }}
{% endmacro %}

{#- Whether the build can be incremental, from the stored state: {incremental, column, as_of
    and watermark (the previous ones), new_watermark, rows, digest, generation (the new
    state)}. The view's rows loaded up to the watermark must be those of the last build:
    - when the view carried a featurekit_history generation then (featurekit.history_generation),
      they are if it carries the same one now (every change since was such a build), and
      the view was rebuilt otherwise: nothing up to the watermark is read;
    - else the count and sum of their change times must be those kept from the last build,
      which reads the change column up to the watermark.
    The rows after it are read either way (zone maps skip most of the table). -#}
{% macro online_plan(view, as_of, existing, state) %}
  {%- set column = view.available_at or ('loaded_at' if 'loaded_at' in featurekit.column_names(view.relation) else none) -%}
  {%- set plan = {'incremental': false, 'column': column, 'as_of': none, 'watermark': none, 'new_watermark': none,
                  'rows': 0, 'digest': 0, 'definition': '', 'newest_data': none, 'generation': none} -%}
  {%- if column is none -%}
    {{ return(plan) }}
  {%- endif -%}
  {%- set node = graph.nodes[view.unique_id] -%}
  {%- do plan.update({
      'definition': featurekit.view_definition(view),
      'generation': featurekit.history_generation(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)),
  }) -%}
  {%- set previous = none -%}
  {%- if existing is not none and not should_full_refresh() and load_cached_relation(state) is not none
        and featurekit.column_names(existing) == featurekit.online_columns(view) | map('lower') | list -%}
    {%- if featurekit.column_names(state) == ['as_of', 'watermark', 'rows_loaded', 'digest', 'definition', 'newest_data', 'history_generation'] -%}
      {%- set rows = run_query('select as_of, watermark, rows_loaded, digest, ' ~ as_of ~ " >= as_of and definition = '" ~ plan.definition
          ~ "', newest_data, history_generation from " ~ state).rows -%}
      {%- set previous = rows[0] if rows | length == 1 and rows[0][4] and rows[0][1] is not none else none -%}
    {%- endif -%}
  {%- endif -%}
  {%- if previous is not none -%}
    {%- set watermark = "cast('" ~ previous[1] ~ "' as timestamp)" -%}
    {%- set previous_as_of = "cast('" ~ previous[0] ~ "' as timestamp)" -%}
    {%- if previous[6] is not none -%}
      {%- set before = none -%}
      {%- if previous[6] == plan.generation -%}
        {#- their newest data before as_of: the last build's, or a row that as_of passed since -#}
        {%- set passed = featurekit.online_summary(view, column, column ~ ' <= ' ~ watermark ~ ' and ' ~ view.timestamp ~ ' >= ' ~ previous_as_of, as_of).newest_data if view.windowed else none -%}
        {%- set newest = [previous[5], passed] | reject('none') | list -%}
        {%- set before = {'rows': previous[2], 'digest': previous[3] | int, 'newest_data': newest | max if newest else none} -%}
      {%- endif -%}
    {%- else -%}
      {%- set before = featurekit.online_summary(view, column, column ~ ' <= ' ~ watermark, as_of) -%}
      {%- set before = before if before.rows == previous[2] and before.digest == previous[3] | int else none -%}
    {%- endif -%}
    {%- if before is not none -%}
      {%- set after = featurekit.online_summary(view, column, column ~ ' > ' ~ watermark, as_of) -%}
      {%- set newest = [before.newest_data, after.newest_data] | reject('none') | list -%}
      {%- do plan.update({
          'incremental': true,
          'as_of': previous_as_of,
          'watermark': watermark,
          'new_watermark': after.newest or previous[1],
          'rows': before.rows + after.rows,
          'digest': before.digest + after.digest,
          'newest_data': newest | max if newest else none,
          'since': "cast('" ~ after.earliest ~ "' as timestamp)" if after.earliest is not none else 'cast(null as timestamp)',
      }) -%}
      {{ return(plan) }}
    {%- endif -%}
  {%- endif -%}
  {%- set all = featurekit.online_summary(view, column, column ~ ' is not null', as_of) -%}
  {%- do plan.update({'new_watermark': all.newest, 'rows': all.rows, 'digest': all.digest, 'newest_data': all.newest_data}) -%}
  {{ return(plan) }}
{% endmacro %}

{#- A relation's column names, in lower case. -#}
{% macro column_names(relation) %}
  {{ return(run_query('select * from ' ~ relation ~ ' where 1 = 0').column_names | map('lower') | list) }}
{% endmacro %}

{#- The view's rows where `condition` holds: how many, the newest change time, an exact
    order-independent digest of the change times (a whole number), the earliest feature
    timestamp and, for a window history,
    the newest data strictly before `as_of` (featurekit.data_row): publish records it as the
    snapshot's newest served data, which expiry rows hide from the online rows. -#}
{% macro online_summary(view, column, condition, as_of) %}
  {%- set newest_data = 'max(case when ' ~ featurekit.data_row(view, as_of, true) ~ ' then ' ~ view.timestamp ~ ' end)' if view.windowed else 'null' -%}
  {%- set row = run_query('select count(*), max(' ~ column ~ '), ' ~ featurekit.online_digest(column) ~ ', ' ~ newest_data
      ~ ', min(' ~ view.timestamp ~ ') from ' ~ view.relation ~ ' where ' ~ condition).rows[0] -%}
  {{ return({'rows': row[0], 'newest': row[1], 'digest': (row[2] or 0) | int, 'newest_data': row[3], 'earliest': row[4]}) }}
{% endmacro %}

{#- The sum of a timestamp column as whole numbers, as text (exact, whatever the order). -#}
{% macro online_digest(column) %}
  {{ return(adapter.dispatch('online_digest', 'featurekit')(column)) }}
{% endmacro %}

{% macro default__online_digest(column) %}
  {#- in microseconds, as DuckDB's: a reload that moves a time by less than a second still shows -#}
  {{ return('cast(sum(cast(round(extract(epoch from ' ~ column ~ ') * 1000000) as bigint)) as varchar)') }}
{% endmacro %}

{% macro spark__online_digest(column) %}
  {{ return('cast(sum(unix_micros(' ~ column ~ ')) as string)') }}
{% endmacro %}

{% macro duckdb__online_digest(column) %}
  {{ return('cast(sum(epoch_us(' ~ column ~ ')) as varchar)') }}
{% endmacro %}

{#- The keys with view rows loaded after the watermark, as a subquery. -#}
{% macro online_changed_keys(view, column, watermark) %}
  {{ return('(select distinct ' ~ view['keys'] | join(', ') ~ ' from ' ~ view.relation ~ ' where ' ~ column ~ ' > ' ~ watermark ~ ')') }}
{% endmacro %}

{#- The view restricted to the changed keys: its timeline is per key, so this gives those
    keys' online rows exactly.

    A window history (without an availability column) is read only from the earliest
    feature timestamp among its rows loaded since the last build, B (plan.since, from the
    plan's summary of those rows), on; before B the changed keys' old online rows stand in
    for it (without an availability column a row's __fk_at is its feature timestamp). Its
    incremental builds rewrite a key's rows only from the key's earliest new event on (featurekit.window_events), and that
    event's row is loaded after the watermark, so every row before B is as it was at the
    last build, and its instants only grow. The old online rows hold, per key, the row
    current at the previous as-of time A0 and every row from A0 on; before B they hold the
    latest row before B and every row from A0 on, which is all the online rows at a later
    as-of time can take from before B. The rest of the history, usually nearly all of it,
    is not read (tests/test_online_incremental.py compares with full builds, late events
    with old timestamps included). -#}
{% macro online_restricted(view, changed, target, plan) %}
  {%- set restricted = {} -%}
  {%- do restricted.update(view) -%}
  {%- set in_changed = featurekit.online_key_in('__fk_v', view['keys'], changed) -%}
  {%- if view.windowed and not view.available_at -%}
    {%- set columns = view['keys'] + featurekit.fetched_columns(view) | reject('equalto', view.timestamp) | list -%}
    {%- do restricted.update({'relation': '(select ' ~ (columns + [view.timestamp]) | join(', ') ~ ' from ' ~ view.relation ~ ' as __fk_v'
        ~ ' where __fk_v.' ~ view.timestamp ~ ' >= ' ~ plan.since ~ ' and ' ~ in_changed
        ~ ' union all select ' ~ (columns + ['__fk_at as ' ~ view.timestamp]) | join(', ') ~ ' from ' ~ target ~ ' as __fk_v'
        ~ ' where __fk_v.__fk_at < ' ~ plan.since ~ ' and ' ~ in_changed ~ ')'}) -%}
  {%- else -%}
    {%- do restricted.update({'relation': '(select * from ' ~ view.relation ~ ' as __fk_v where ' ~ in_changed ~ ')'}) -%}
  {%- endif -%}
  {{ return(restricted) }}
{% endmacro %}

{% macro online_key_in(alias, keys, changed) %}
  {{ return('exists (select 1 from ' ~ changed ~ ' as __fk_c where ' ~ featurekit.online_same_key('__fk_c', alias, keys) ~ ')') }}
{% endmacro %}

{% macro online_same_key(a, b, keys) %}
  {%- set parts = [] -%}
  {%- for key in keys -%}
    {%- do parts.append(a ~ '.' ~ key ~ ' = ' ~ b ~ '.' ~ key) -%}
  {%- endfor -%}
  {{ return(parts | join(' and ')) }}
{% endmacro %}

{% macro online_delete_keys(target, keys, changed) %}
  delete from {{ target }} as __fk_t where {{ featurekit.online_key_in('__fk_t', keys, changed) }}
{% endmacro %}

{#- The rows an advance of the as-of time from A0 to A1 hides: per key, those before the
    newest row visible at A1, when that row became visible in [A0, A1). -#}
{% macro online_delete_hidden(target, keys, previous_as_of, as_of) %}
  {{ return(adapter.dispatch('online_delete_hidden', 'featurekit')(target, keys, previous_as_of, as_of)) }}
{% endmacro %}

{% macro default__online_delete_hidden(target, keys, previous_as_of, as_of) %}
  delete from {{ target }} as __fk_t where {{ featurekit.online_hidden('__fk_t', target, keys, previous_as_of, as_of) }}
{% endmacro %}

{#- Whether the online row `alias` of `target` is one that an advance from A0 to A1 hides. -#}
{% macro online_hidden(alias, target, keys, previous_as_of, as_of) %}
  {{- alias }}.__fk_at < {{ as_of }}
    and exists (
        select 1 from {{ target }} as __fk_n
        where {{ featurekit.online_same_key('__fk_n', alias, keys) }}
          and __fk_n.__fk_at >= {{ previous_as_of }} and __fk_n.__fk_at < {{ as_of }}
          and __fk_n.__fk_at > {{ alias }}.__fk_at
    )
{%- endmacro %}

{#- Whether online tables are updated in place (delete, then insert). Spark's plain Parquet
    tables have no DELETE: their incremental build writes a new table of the rows kept
    (featurekit.online_kept_rows) and the recomputed ones, and swaps it in. -#}
{% macro online_in_place() %}
  {{ return(adapter.dispatch('online_in_place', 'featurekit')()) }}
{% endmacro %}

{% macro default__online_in_place() %}
  {{ return(true) }}
{% endmacro %}

{% macro spark__online_in_place() %}
  {{ return(false) }}
{% endmacro %}

{#- The online rows that an incremental build keeps: those of keys without new view rows
    that the advance of the as-of time does not hide (what the in-place path leaves after
    its two deletes). -#}
{% macro online_kept_rows(target, keys, changed, previous_as_of, as_of) %}
  select * from {{ target }} as __fk_t
  where not {{ featurekit.online_key_in('__fk_t', keys, changed) }}
    and not ({{ featurekit.online_hidden('__fk_t', target, keys, previous_as_of, as_of) }})
{%- endmacro %}

{#- The same rows: those before their key's newest row in [A0, A1). DuckDB runs the correlated
    form above as a nested loop over the whole table (0.05-0.14 s per 1M-row online table, even
    when nothing became visible); this one is a hash join with the keys that have such a row
    (2-7 ms). -#}
{% macro duckdb__online_delete_hidden(target, keys, previous_as_of, as_of) %}
  delete from {{ target }} as __fk_t
  using (
      select {{ keys | join(', ') }}, max(__fk_at) as __fk_newest
      from {{ target }}
      where __fk_at >= {{ previous_as_of }} and __fk_at < {{ as_of }}
      group by {{ keys | join(', ') }}
  ) as __fk_n
  where {{ featurekit.online_same_key('__fk_n', '__fk_t', keys) }}
    and __fk_t.__fk_at < __fk_n.__fk_newest
{% endmacro %}

{#- Fails the build when rows repeat a (keys, feature timestamp): the join would pick among
    them arbitrarily. `where`: only the rows loaded since the last build (none: all rows);
    an incremental view build replaces the rows of the keys and instants it writes
    (delete+insert on them), so only its new rows can repeat one. -#}
{% macro online_check_unique(view, where) %}
  {%- set columns = view['keys'] + [view.timestamp] -%}
  {%- set found = run_query(
      'select ' ~ columns | join(', ') ~ ', count(*) from ' ~ view.relation ~ (' where ' ~ where if where else '')
      ~ ' group by ' ~ columns | join(', ') ~ ' having count(*) > 1 limit 1').rows -%}
  {%- if found | length > 0 -%}
    {{ exceptions.raise_compiler_error(view.ref ~ ": (" ~ columns | join(', ') ~ ") = " ~ found[0][:-1] | list ~ " occurs " ~ found[0][-1] ~ " times; the online table needs one row per key and instant (the view's unique_history test)") }}
  {%- endif -%}
{% endmacro %}

{% macro online_save_state(state, plan, as_of) %}
  {%- set watermark = "cast('" ~ plan.new_watermark ~ "' as timestamp)" if plan.new_watermark is not none else 'cast(null as timestamp)' -%}
  {%- set tmp = state.incorporate(path={'identifier': state.identifier ~ '__tmp'}) -%}
  {{ drop_relation_if_exists(tmp) }}
  {% call statement('featurekit_online_state') %}
    {{ get_create_table_as_sql(False, tmp,
        'select ' ~ as_of ~ ' as as_of, ' ~ watermark ~ ' as watermark, cast(' ~ plan.rows ~ ' as bigint) as rows_loaded, '
        ~ "cast('" ~ plan.digest ~ "' as " ~ dbt.type_string() ~ ") as digest, '" ~ plan.definition ~ "' as definition, "
        ~ ("cast('" ~ plan.newest_data ~ "' as timestamp)" if plan.newest_data is not none else 'cast(null as timestamp)') ~ ' as newest_data, '
        ~ (featurekit.literal(plan.generation) if plan.generation is not none else 'cast(null as ' ~ dbt.type_string() ~ ')') ~ ' as history_generation') }}
  {% endcall %}
  {{ drop_relation_if_exists(state) }}
  {{ adapter.rename_relation(tmp, state) }}
{% endmacro %}

{#- A digest of what a feature view's rows follow from: its SQL and every macro of its
    package and featurekit's that it reaches (featurekit.reached_macros, the same reach as
    `featurekit lock`), read from dbt's macros in this build. -#}
{% macro view_definition(view) %}
  {%- set node = graph.nodes[view.unique_id] -%}
  {%- set sources = {} -%}
  {%- for package in [node.package_name, 'featurekit'] -%}
    {%- set macros = {} -%}
    {%- for name, macro in (context.get(package) or {}).items() if macro.macro is defined -%}
      {%- do macros.update({name: macro.macro.macro_sql}) -%}
    {%- endfor -%}
    {%- do sources.update({package: macros}) -%}
  {%- endfor -%}
  {%- set texts = [node.raw_code] -%}
  {%- for uid in featurekit.reached_macros(node.raw_code, node.package_name, sources) -%}
    {%- set package, name = uid.split('.')[1:] -%}
    {%- do texts.append(uid ~ '\n' ~ sources[package][name]) -%}
  {%- endfor -%}
  {{ return(local_md5(texts | join('\n'))) }}
{% endmacro %}
