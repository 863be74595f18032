{#- The example shop's raw tables: the bundled seeds by default, or the Parquet files of
    the `shop` source when var shop_data_dir is set (larger generated data, see README). -#}
{% macro shop_table(name) %}
  {%- if var('shop_data_dir', '') -%}
    {{ return(source('shop', name)) }}
  {%- else -%}
    {{ return(ref(name)) }}
  {%- endif -%}
{% endmacro %}
