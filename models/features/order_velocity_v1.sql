{{ config(unique_key=['customer_id', 'feature_ts']) }}

-- Sub-hour windows: a burst of orders shows up within seconds and is gone 15 minutes later.
{{ featurekit.window_history(
    ref('stg_orders'),
    keys=['customer_id'],
    timestamp='order_ts',
    loaded_at='loaded_at',
    aggregates=[
        {'name': 'orders_15m', 'function': 'count', 'window': '15 minutes'},
        {'name': 'orders_1h', 'function': 'count', 'window': '1 hour'},
        {'name': 'max_order_value_1h', 'function': 'max', 'column': 'order_value', 'window': '1 hour'},
        {'name': 'returns_24h', 'function': 'count', 'column': 'case when is_return then order_id end', 'window': '24 hours'},
    ],
    existing=this if is_incremental() else none,
) }}
