with

order_items as (

    select * from {{ ref('stg_order_items') }}

),

images as (

    select * from {{ ref('stg_images') }}

),

owners as (

    select * from {{ ref('stg_image_owners') }}
    where kind = 'menu' and menu_item_id is not null

),

photos as (

    select
        owners.restaurant_id,
        owners.menu_item_id,
        arbitrary(owners.market) as market,
        min(images.image_id) as image_id,
        min(images.photo_id) as photo_id
    from owners
    inner join images on images.image_id = owners.image_id
    group by 1, 2

),

sales as (

    select
        restaurant_id,
        menu_item_id,
        arbitrary(market) as market,
        max(item_name) as item_name,
        count(distinct order_id) as orders,
        sum(quantity) as quantity,
        sum(revenue) as revenue
    from order_items
    group by 1, 2

),

final as (

    select
        coalesce(sales.restaurant_id, photos.restaurant_id) as restaurant_id,
        coalesce(sales.menu_item_id, photos.menu_item_id) as menu_item_id,
        coalesce(sales.market, photos.market) as market,
        sales.item_name,
        photos.image_id is not null as has_photo,
        photos.image_id,
        photos.photo_id,
        coalesce(sales.orders, 0) as orders,
        coalesce(sales.quantity, 0) as quantity,
        coalesce(sales.revenue, 0) as revenue
    from sales
    full outer join photos
        on photos.restaurant_id = sales.restaurant_id and photos.menu_item_id = sales.menu_item_id

)

select * from final
