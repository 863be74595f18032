with source as (
    select * from {{ shop_table('raw_support_tickets') }}
),

final as (
    select
        cast(ticket_id as bigint) as ticket_id,
        cast(customer_id as bigint) as customer_id,
        cast(opened_ts as timestamp) as opened_ts,
        priority,
        cast(satisfaction as integer) as satisfaction,
        cast(loaded_at as timestamp) as loaded_at
    from source
)

select * from final
