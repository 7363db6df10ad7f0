with

source as (

    select * from {{ source('raw', 'orders') }}
    where event_type = 'placed'

),

ranked as (

    select
        *,
        row_number() over (partition by event_id order by ingested_at, sse_id) as copy_number
    from source

),

placed as (

    select * from ranked
    where copy_number = 1

),

final as (

    select
        placed.order_id,
        placed.market,
        placed.restaurant_id,
        placed.event_time as placed_at,
        item.menu_item_id,
        item.name as item_name,
        item.quantity,
        item.unit_price,
        item.quantity * item.unit_price as revenue

    from placed
    cross join unnest(placed.items) as item (menu_item_id, name, quantity, unit_price)

)

select * from final
