{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['window_start', 'market'],
    alias='orders_minute',
    on_schema_change='fail',
    properties={'partitioning': "ARRAY['day(window_start)']"},
) }}

-- depends_on: {{ ref('batch_sources_seen') }}

with

orders as (

    select * from {{ ref('stg_orders') }}
    where {{ batch_days('orders', 'event_time') }}

),

aggregated as (

    select
        event_minute as window_start,
        market,
        count_if(event_type = 'placed') as placed,
        count_if(event_type = 'accepted') as accepted,
        count_if(event_type = 'picked_up') as picked_up,
        count_if(event_type = 'delivered') as delivered,
        count_if(event_type = 'cancelled') as cancelled,
        cast(coalesce(sum(order_total) filter (where event_type = 'placed'), 0) as decimal(12, 2)) as gmv_placed,
        cast(coalesce(sum(order_total) filter (where event_type = 'delivered'), 0) as decimal(12, 2))
            as gmv_delivered,
        -- summed as decimals (delivery_minutes has two decimals), so a rerun gives the very same double
        cast(
            coalesce(sum(cast(coalesce(delivery_minutes, 0) as decimal(18, 6))) filter (where event_type = 'delivered'), 0)
            as double
        ) as delivery_minutes_sum
    from orders
    group by 1, 2

),

changed as (

    {{ changed_rows('aggregated', ['window_start', 'market'],
                    ['placed', 'accepted', 'picked_up', 'delivered', 'cancelled', 'gmv_placed', 'gmv_delivered',
                     'delivery_minutes_sum'],
                    current_filter=batch_days('orders', 'window_start')) }}

),

final as (

    select * from changed

)

select * from final
