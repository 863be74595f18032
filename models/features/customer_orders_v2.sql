{{ config(unique_key=['customer_id', 'feature_ts']) }}

with orders as (
    select * from {{ ref('stg_orders') }}
    {% if is_incremental() %}
    -- only customers with orders loaded since the last build
    where customer_id in (
        select customer_id from {{ ref('stg_orders') }}
        where loaded_at > (select max(loaded_at) from {{ this }})
    )
    {% endif %}
),

-- v2: returned orders are excluded from count and value
per_instant as (
    select
        customer_id,
        order_ts,
        count(*) filter (where not is_return) as orders,
        sum(case when not is_return then order_value else 0 end) as order_value,
        max(loaded_at) as loaded_at
    from orders
    group by customer_id, order_ts
),

final as (
    select
        customer_id,
        order_ts as feature_ts,
        sum(orders) over last_30_days as orders_30d,
        sum(order_value) over last_30_days as order_value_30d,
        loaded_at
    from per_instant
    window last_30_days as (
        partition by customer_id order by order_ts
        range between interval 30 days preceding and current row
    )
)

select * from final
