{#- A query answering whether the view (or `relation`, another name of its table) has an
    index the point-in-time join can descend per label: a valid btree led by the view's keys
    then its feature timestamp, with no predicate. One boolean row; none (no query) on an
    engine without such a plan. Asked before the join is rendered (featurekit.join_plan_queries,
    with_join_plans). -#}
{% macro join_index_sql(view, relation=none) %}
  {{ return(adapter.dispatch('join_index_sql', 'featurekit')(view, relation)) }}
{% endmacro %}

{% macro default__join_index_sql(view, relation) %}
  {{ return(none) }}
{% endmacro %}

{% macro postgres__join_index_sql(view, relation) %}
  {%- set columns = view['keys'] + [view.timestamp] -%}
  {%- set sql -%}
    select exists (
        select 1
        from pg_index as i
        join pg_class as c on c.oid = i.indexrelid
        join pg_am as a on a.oid = c.relam
        where i.indrelid = to_regclass('{{ (relation or view.relation) | string | replace("'", "''") }}')
          and a.amname = 'btree' and i.indisvalid and i.indpred is null and i.indnkeyatts >= {{ columns | length }}
          {%- for column in columns %}
          and (select attname from pg_attribute where attrelid = i.indrelid and attnum = i.indkey[{{ loop.index0 }}]) = '{{ column }}'
          {%- endfor %}
    )
  {%- endset -%}
  {{ return(sql) }}
{% endmacro %}
