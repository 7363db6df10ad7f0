with

source as (

    select * from {{ source('raw', 'image_owners') }}

),

ranked as (

    select
        *,
        row_number() over (partition by owner_key order by stored_at) as copy_number
    from source

),

final as (

    select
        owner_key,
        image_id,
        photo_id,
        kind,
        order_id,
        menu_item_id,
        restaurant_id,
        courier_id,
        market,
        stored_at

    from ranked
    where copy_number = 1

)

select * from final
