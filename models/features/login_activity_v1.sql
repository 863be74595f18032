{{ config(unique_key=['customer_id', 'feature_ts']) }}

with logins as (
    select * from {{ ref('stg_logins') }}
    {% if is_incremental() %}
    -- logins carry no load time: recompute customers with logins after the last row
    where customer_id in (
        select customer_id from {{ ref('stg_logins') }}
        where login_ts > (select max(feature_ts) from {{ this }})
    )
    {% endif %}
),

per_instant as (
    select customer_id, login_ts, count(*) as logins
    from logins
    group by customer_id, login_ts
),

final as (
    select
        customer_id,
        login_ts as feature_ts,
        sum(logins) over last_7_days as logins_7d
    from per_instant
    window last_7_days as (
        partition by customer_id order by login_ts
        range between interval 7 days preceding and current row
    )
)

select * from final
