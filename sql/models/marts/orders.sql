with

order_events as (

    select * from {{ ref('stg_orders') }}

),

lifecycle as (

    select
        order_id,
        arbitrary(market) as market,
        max(restaurant_id) as restaurant_id,
        max(customer_id) as customer_id,
        max(courier_id) as courier_id,
        min(event_time) filter (where event_type = 'placed') as placed_at,
        min(event_time) filter (where event_type = 'accepted') as accepted_at,
        min(event_time) filter (where event_type = 'picked_up') as picked_up_at,
        min(event_time) filter (where event_type = 'delivered') as delivered_at,
        min(event_time) filter (where event_type = 'cancelled') as cancelled_at,
        max(cancel_reason) as cancel_reason,
        max(order_total) filter (where event_type = 'placed') as order_total,
        max(currency) as currency,
        max(delivery_minutes) filter (where event_type = 'delivered') as delivery_minutes
    from order_events
    group by order_id

),

final as (

    select
        *,
        case
            when delivered_at is not null then 'delivered'
            when cancelled_at is not null then 'cancelled'
            when picked_up_at is not null then 'picked_up'
            when accepted_at is not null then 'accepted'
            else 'placed'
        end as status,
        delivered_at is not null
            and delivery_minutes <= {{ var('on_time_minutes') }} as is_on_time
    from lifecycle

)

select * from final
