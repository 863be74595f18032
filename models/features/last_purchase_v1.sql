{{ config(unique_key=['customer_id', 'feature_ts']) }}

with
{% if is_incremental() %}
new_orders as (
    select customer_id, order_ts from {{ ref('stg_orders') }}
    where loaded_at > {{ featurekit.newest(this, 'loaded_at') }}
),
{% endif %}

orders as (
    select * from {{ ref('stg_orders') }}
    where not is_return
    {% if is_incremental() %}
    -- a row sums the orders of one instant, so only the instants of orders loaded since
    -- the last build change (kept below; this bound lets the scan skip older data)
    and order_ts >= (select min(order_ts) from new_orders)
    {% endif %}
),

-- several orders can share one timestamp: one history row per instant
final as (
    select
        customer_id,
        order_ts as feature_ts,
        order_ts as last_purchase_ts,
        sum(order_value) as last_order_value,
        max(loaded_at) as loaded_at
    from orders
    group by customer_id, order_ts
    {% if is_incremental() %}
    having (customer_id, order_ts) in (select customer_id, order_ts from new_orders)
    {% endif %}
)

select * from final
