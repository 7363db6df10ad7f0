with

source as (

    select * from {{ source('raw', 'orders') }}

),

ranked as (

    select
        *,
        row_number() over (partition by event_id, event_time order by ingested_at, sse_id) as copy_number
    from source

),

final as (

    select
        event_id,
        event_time,
        date_trunc('minute', event_time) as event_minute,
        event_type,
        order_id,
        market,
        restaurant_id,
        customer_id,
        courier_id,
        order_total,
        currency,
        delivery_minutes,
        cancel_reason,
        ingested_at

    from ranked
    where copy_number = 1

)

select * from final
