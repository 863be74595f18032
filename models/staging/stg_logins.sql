with source as (
    select * from {{ shop_table('raw_logins') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(login_ts as timestamp) as login_ts,
        device,
        cast(loaded_at as timestamp) as loaded_at
    from source
)

select * from final
