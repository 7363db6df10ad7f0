with

delivered as (

    select * from {{ ref('orders') }}
    where delivered_at is not null

),

images as (

    select * from {{ ref('stg_images') }}

),

owners as (

    select * from {{ ref('stg_image_owners') }}
    where kind = 'proof_of_delivery' and order_id is not null

),

proofs as (

    select distinct owners.order_id
    from owners
    inner join images on images.image_id = owners.image_id

),

final as (

    select
        delivered.market,
        delivered.courier_id,
        cast(delivered.delivered_at as date) as day,
        count(*) as delivered_orders,
        count(proofs.order_id) as orders_with_photo,
        count(*) - count(proofs.order_id) as orders_without_photo,
        count(proofs.order_id) * 1e0 / count(*) as photo_coverage
    from delivered
    left join proofs on proofs.order_id = delivered.order_id
    group by 1, 2, 3

)

select * from final
