{{ config(unique_key=['customer_id', 'feature_ts']) }}

with orders as (
    select * from {{ ref('stg_orders') }}
    where not is_return
    {% if is_incremental() %}
    -- only customers with orders loaded since the last build
    and customer_id in (
        select customer_id from {{ ref('stg_orders') }}
        where loaded_at > (select max(loaded_at) from {{ this }})
    )
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
)

select * from final
