{#- One row per delivered order, dated by its delivery: the on-time rate and the delivery times of a period.

    marts.orders answers the same per order, but a filter on its placed time cannot reach the raw files (the time
    is an aggregate over the order's events), so "today" there reads and deduplicates the whole lake. Here the
    delivery time is the delivered event's own event time, and a filter on it passes through stg_orders'
    deduplication (which partitions by event id and event time) down to the day partitions of raw.orders: the
    dashboard's "today" reads today. Same on-time rule as marts.orders. -#}

with

delivered as (

    select * from {{ ref('stg_orders') }}
    where event_type = 'delivered'

),

final as (

    select
        order_id,
        market,
        restaurant_id,
        courier_id,
        event_time as delivered_at,
        delivery_minutes,
        delivery_minutes <= {{ var('on_time_minutes') }} as is_on_time,
        order_total,
        currency
    from delivered

)

select * from final
