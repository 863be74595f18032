{{ config(unique_key=['customer_id', 'feature_ts']) }}

-- Logins carry no load time: an incremental run picks up logins later than the newest one
-- already counted (a late-arriving earlier login needs a rebuild of the view).
{{ featurekit.window_history(
    ref('stg_logins'),
    keys=['customer_id'],
    timestamp='login_ts',
    aggregates=[
        {'name': 'logins_7d', 'function': 'count', 'window': '7 days'},
    ],
    existing=this if is_incremental() else none,
) }}
