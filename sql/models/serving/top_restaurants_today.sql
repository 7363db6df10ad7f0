{#- Restaurants by GMV of the orders placed today (UTC), from marts.orders. -#}

with

orders as (

    select * from {{ ref('orders') }}
    where placed_at >= cast(date_trunc('day', current_timestamp at time zone 'UTC') as timestamp(6) with time zone)

),

final as (

    select
        restaurant_id,
        arbitrary(market) as market,
        count(*) as orders,
        coalesce(sum(order_total), 0) as gmv,
        count_if(status = 'delivered') as deliveries,
        count_if(is_on_time) * 1e0 / nullif(count_if(status = 'delivered'), 0) as on_time_rate
    from orders
    where restaurant_id is not null
    group by restaurant_id

)

select * from final
