with

orders as (

    select * from {{ ref('orders') }}
    where placed_at is not null

),

final as (

    select
        market,
        cast(placed_at as date) as day,
        count(*) as orders,
        coalesce(sum(order_total), 0) as gmv,
        count_if(status = 'cancelled') as cancellations,
        count_if(status = 'delivered') as deliveries,
        approx_percentile(delivery_minutes, 0.5) filter (where status = 'delivered') as delivery_minutes_p50,
        approx_percentile(delivery_minutes, 0.9) filter (where status = 'delivered') as delivery_minutes_p90,
        count_if(is_on_time) * 1e0 / nullif(count_if(status = 'delivered'), 0) as on_time_rate
    from orders
    group by 1, 2

)

select * from final
