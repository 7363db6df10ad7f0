{#- One row per minute and market: batch rows below the boundary, the latest speed firing at or above it (Apache
    Pinot's hybrid-table rule). "Latest" is ordered by the speed layer's firing sequence (`batch`, monotonic per
    writer across restarts), then `fired_at` (a restart re-fires open minutes under the last committed batch). -#}

with

boundary as (

    select coalesce(max(boundary), timestamp '1970-01-01 00:00:00.000000 UTC') as boundary
    from {{ ref('batch_boundary') }}

),

batch_rows as (

    select batch_minute.*, 'batch' as layer
    from {{ ref('batch_orders_minute') }} as batch_minute
    cross join boundary
    where batch_minute.window_start < boundary.boundary

),

speed_firings as (

    select
        firing.*,
        row_number() over (
            partition by firing.window_start, firing.market order by firing.batch desc, firing.fired_at desc
        ) as firing_rank
    from {{ source('speed', 'orders_minute') }} as firing
    cross join boundary
    where firing.window_start >= boundary.boundary

),

speed_rows as (

    select
        window_start, market, placed, accepted, picked_up, delivered, cancelled, gmv_placed, gmv_delivered,
        delivery_minutes_sum, 'speed' as layer
    from speed_firings
    where firing_rank = 1

),

final as (

    select * from batch_rows
    union all
    select * from speed_rows

)

select * from final
