with source as (
    select * from {{ shop_table('churn_labels') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(label_ts as timestamp) as label_ts,
        churned
    from source
)

select * from final
