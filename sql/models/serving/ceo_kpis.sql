{#- The CEO dashboard's headline numbers in one row, as of the query: GMV and orders today (UTC) from the hybrid
    serving.orders_minute, against the same time yesterday; today's deliveries (on time, average and p90 minutes)
    from marts.deliveries, whose filter on the delivery time reads only today's raw files; the markets with an
    order placed today. -#}

with

clock as (

    select
        current_timestamp as as_of,
        cast(date_trunc('day', current_timestamp at time zone 'UTC') as timestamp(6) with time zone) as today

),

minutes as (

    select * from {{ ref('orders_minute') }}

),

deliveries as (

    select * from {{ ref('deliveries') }}

),

placed as (

    select
        sum(minutes.gmv_placed) filter (where minutes.window_start >= clock.today) as gmv_today,
        sum(minutes.gmv_placed) filter (
            where minutes.window_start >= clock.today - interval '1' day
            and minutes.window_start < clock.as_of - interval '1' day
        ) as gmv_yesterday_same_time,
        sum(minutes.placed) filter (where minutes.window_start >= clock.today) as orders_today,
        count(distinct minutes.market) filter (
            where minutes.window_start >= clock.today and minutes.placed > 0
        ) as active_markets
    from minutes
    cross join clock

),

delivered as (

    select
        count(*) as deliveries_today,
        count_if(deliveries.is_on_time) * 1e0 / nullif(count(*), 0) as on_time_rate_today,
        avg(deliveries.delivery_minutes) as avg_delivery_minutes_today,
        approx_percentile(deliveries.delivery_minutes, 0.9) as p90_delivery_minutes_today
    from deliveries
    cross join clock
    where deliveries.delivered_at >= clock.today

),

final as (

    select
        cast(clock.as_of as timestamp(6) with time zone) as as_of,
        coalesce(placed.gmv_today, 0) as gmv_today,
        coalesce(placed.gmv_yesterday_same_time, 0) as gmv_yesterday_same_time,
        placed.gmv_today / nullif(placed.gmv_yesterday_same_time, 0) - 1 as gmv_change,
        coalesce(placed.orders_today, 0) as orders_today,
        placed.active_markets,
        delivered.deliveries_today,
        delivered.on_time_rate_today,
        delivered.avg_delivery_minutes_today,
        delivered.p90_delivery_minutes_today
    from clock
    cross join placed
    cross join delivered

)

select * from final
