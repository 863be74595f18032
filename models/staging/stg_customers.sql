with source as (
    select * from {{ shop_table('raw_customers') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(valid_from as timestamp) as valid_from,
        region,
        plan,
        cast(loaded_at as timestamp) as loaded_at
    from source
)

select * from final
