{{ config(unique_key=['customer_id', 'feature_ts']) }}

with tickets as (
    select * from {{ ref('stg_support_tickets') }}
    {% if is_incremental() %}
    -- only customers with tickets loaded since the last build
    where customer_id in (
        select customer_id from {{ ref('stg_support_tickets') }}
        where loaded_at > {{ featurekit.newest(this, 'loaded_at') }}
    )
    {% endif %}
),

per_instant as (
    select
        customer_id,
        opened_ts,
        count(*) as tickets,
        sum(satisfaction) as satisfaction_sum,
        count(satisfaction) as satisfaction_count,
        max(loaded_at) as loaded_at
    from tickets
    group by customer_id, opened_ts
),

final as (
    select
        customer_id,
        opened_ts as feature_ts,
        -- as an 8-byte float on every engine (a sum of bigints is hugeint in DuckDB, numeric in
        -- PostgreSQL), divided as doubles: the same values everywhere
        cast(sum(tickets) over last_90_days as {{ featurekit.type_double() }}) as tickets_90d,
        cast(sum(satisfaction_sum) over last_90_days as {{ featurekit.type_double() }})
            / nullif(sum(satisfaction_count) over last_90_days, 0) as avg_satisfaction_90d,
        loaded_at
    from per_instant
    window last_90_days as (
        partition by customer_id order by opened_ts
        range between interval '90 days' preceding and current row
    )
)

select * from final
