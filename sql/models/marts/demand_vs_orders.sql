with

changes as (

    select * from {{ ref('stg_recentchange') }}

),

order_events as (

    select * from {{ ref('stg_orders') }}

),

demand as (

    select market, event_minute as minute, count(*) as demand_events
    from changes
    group by 1, 2

),

placed as (

    select market, event_minute as minute, count(*) as orders_placed
    from order_events
    where event_type = 'placed'
    group by 1, 2

),

joined as (

    select
        coalesce(demand.market, placed.market) as market,
        coalesce(demand.minute, placed.minute) as minute,
        coalesce(demand.demand_events, 0) as demand_events,
        coalesce(placed.orders_placed, 0) as orders_placed
    from demand
    full outer join placed
        on demand.market = placed.market and demand.minute = placed.minute

),

final as (

    select
        market,
        minute,
        demand_events,
        demand_events * 1e0 / nullif(avg(demand_events) over (partition by market), 0) as demand_index,
        orders_placed
    from joined

)

select * from final
