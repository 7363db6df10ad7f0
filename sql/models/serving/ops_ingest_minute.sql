{#- Ingestion per source and minute of ingestion time: events, events per second, and the lag from event time to
    ingestion (average and maximum seconds). Read from the raw tables as written, duplicates included. -#}

with

recentchange as (

    select 'recentchange' as source, event_time, ingested_at from {{ source('raw', 'recentchange') }}

),

orders as (

    select 'orders' as source, event_time, ingested_at from {{ source('raw', 'orders') }}

),

events as (

    select * from recentchange
    union all
    select * from orders

),

final as (

    select
        source,
        date_trunc('minute', ingested_at) as minute,
        count(*) as events,
        count(*) / 60e0 as events_per_second,
        avg(date_diff('millisecond', event_time, ingested_at)) / 1000e0 as lag_seconds_avg,
        max(date_diff('millisecond', event_time, ingested_at)) / 1000e0 as lag_seconds_max
    from events
    group by 1, 2

)

select * from final
