{#- Restaurants by GMV of the orders placed today (UTC), with those orders' deliveries and on-time rate (the rules
    of marts.orders). Read from stg_orders' events of today: every event of an order placed today happened today or
    later, and a filter on the event time reads only today's raw files, where a filter on marts.orders.placed_at (an
    aggregate) would read the whole lake. -#}

with

events as (

    select * from {{ ref('stg_orders') }}
    where event_time >= cast(date_trunc('day', current_timestamp at time zone 'UTC') as timestamp(6) with time zone)

),

placed as (

    select order_id, restaurant_id, market, order_total
    from events
    where event_type = 'placed'

),

delivered as (

    select order_id, max(delivery_minutes) as delivery_minutes
    from events
    where event_type = 'delivered'
    group by order_id

),

final as (

    select
        placed.restaurant_id,
        arbitrary(placed.market) as market,
        count(*) as orders,
        coalesce(sum(placed.order_total), 0) as gmv,
        count(delivered.order_id) as deliveries,
        count_if(delivered.delivery_minutes <= {{ var('on_time_minutes') }}) * 1e0
            / nullif(count(delivered.order_id), 0) as on_time_rate
    from placed
    left join delivered on delivered.order_id = placed.order_id
    where placed.restaurant_id is not null
    group by placed.restaurant_id

)

select * from final
