with

source as (

    select * from {{ source('raw', 'images') }}

),

ranked as (

    select
        *,
        row_number() over (partition by image_id order by stored_at, photo_id) as copy_number
    from source

),

final as (

    select
        image_id,
        kind,
        photo_id,
        source_url,
        format,
        content_type,
        width,
        height,
        mode,
        byte_size,
        phash,
        dominant_colour,
        exif_time,
        stored_at

    from ranked
    where copy_number = 1

)

select * from final
