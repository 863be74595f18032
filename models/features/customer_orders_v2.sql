{{ config(unique_key=['customer_id', 'feature_ts']) }}

-- v2: returned orders are excluded from count and value
{{ featurekit.window_history(
    ref('stg_orders'),
    keys=['customer_id'],
    timestamp='order_ts',
    loaded_at='loaded_at',
    where='not is_return',
    aggregates=[
        {'name': 'orders_30d', 'function': 'count', 'window': '30 days'},
        {'name': 'order_value_30d', 'function': 'sum', 'column': 'order_value', 'window': '30 days'},
    ],
    existing=this if is_incremental() else none,
) }}
