{{ config(unique_key=['customer_id', 'feature_ts']) }}

-- v2: exact 90-day windows (featurekit.window_history) instead of values frozen at each
-- ticket and a 90-day ttl: the count drops as each ticket turns 90 days old.
{{ featurekit.window_history(
    ref('stg_support_tickets'),
    keys=['customer_id'],
    timestamp='opened_ts',
    loaded_at='loaded_at',
    aggregates=[
        {'name': 'tickets_90d', 'function': 'count', 'window': '90 days'},
        {'name': 'avg_satisfaction_90d', 'function': 'avg', 'column': 'satisfaction', 'window': '90 days'},
    ],
    existing=this if is_incremental() else none,
) }}
