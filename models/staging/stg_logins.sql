with source as (
    select * from {{ shop_table('raw_logins') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(login_ts as timestamp) as login_ts,
        device
    from source
)

select * from final
