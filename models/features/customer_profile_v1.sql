{{ config(unique_key=['customer_id', 'feature_ts']) }}

with changes as (
    select * from {{ ref('stg_customers') }}
    {% if is_incremental() %}
    -- only customers with changes loaded since the last build
    where customer_id in (
        select customer_id from {{ ref('stg_customers') }}
        where loaded_at > {{ featurekit.newest(this, 'available_at') }}
    )
    {% endif %}
),

final as (
    select
        customer_id,
        valid_from as feature_ts,
        loaded_at as available_at,
        region,
        plan,
        min(valid_from) over (partition by customer_id) as signup_ts
    from changes
)

select * from final
