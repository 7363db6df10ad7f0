{#- One row per minute, market and wiki: batch rows below the boundary, the latest speed firing at or above it
    (the rule of serving.orders_minute). -#}

with

boundary as (

    select coalesce(max(boundary), timestamp '1970-01-01 00:00:00.000000 UTC') as boundary
    from {{ ref('batch_boundary') }}

),

batch_rows as (

    select batch_minute.*, 'batch' as layer
    from {{ ref('batch_demand_minute') }} as batch_minute
    cross join boundary
    where batch_minute.window_start < boundary.boundary

),

speed_firings as (

    select
        firing.*,
        row_number() over (
            partition by firing.window_start, firing.market, firing.wiki
            order by firing.batch desc, firing.fired_at desc
        ) as firing_rank
    from {{ source('speed', 'demand_minute') }} as firing
    cross join boundary
    where firing.window_start >= boundary.boundary

),

speed_rows as (

    select
        window_start, market, wiki, events, edits, new_pages, bot_events, bytes_delta, 'speed' as layer
    from speed_firings
    where firing_rank = 1

),

final as (

    select * from batch_rows
    union all
    select * from speed_rows

)

select * from final
