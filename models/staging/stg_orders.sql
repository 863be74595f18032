with source as (
    select * from {{ shop_table('raw_orders') }}
),

final as (
    select
        cast(order_id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        cast(order_ts as timestamp) as order_ts,
        cast(order_value as {{ featurekit.type_double() }}) as order_value,
        status,
        status = 'returned' as is_return,
        cast(loaded_at as timestamp) as loaded_at
    from source
)

select * from final
