{#- Outages: gaps in a firehose's event times longer than var('outage_seconds'), per source, from the raw tables. -#}

with

recentchange as (

    select 'recentchange' as source, event_time from {{ source('raw', 'recentchange') }}

),

orders as (

    select 'orders' as source, event_time from {{ source('raw', 'orders') }}

),

events as (

    select * from recentchange
    union all
    select * from orders

),

gaps as (

    select
        source,
        lag(event_time) over (partition by source order by event_time) as gap_start,
        event_time as gap_end
    from events

),

final as (

    select
        source,
        gap_start,
        gap_end,
        date_diff('millisecond', gap_start, gap_end) / 1000e0 as gap_seconds
    from gaps
    where date_diff('second', gap_start, gap_end) > {{ var('outage_seconds', 60) }}

)

select * from final
