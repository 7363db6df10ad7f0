{#- How fresh each source is: its newest event and newest commit, the batch boundary, and their ages in seconds
    at query time. -#}

with

boundary as (

    select max(boundary) as boundary from {{ ref('batch_boundary') }}

),

recentchange as (

    select
        'recentchange' as source,
        (select max(event_time) from {{ source('raw', 'recentchange') }}) as newest_event_time,
        cast(
            (select max(committed_at) from {{ source('raw', 'recentchange').database }}.{{ source('raw', 'recentchange').schema }}."recentchange$snapshots")
            as timestamp(6) with time zone
        ) as newest_commit_time

),

orders as (

    select
        'orders' as source,
        (select max(event_time) from {{ source('raw', 'orders') }}) as newest_event_time,
        cast(
            (select max(committed_at) from {{ source('raw', 'orders').database }}.{{ source('raw', 'orders').schema }}."orders$snapshots")
            as timestamp(6) with time zone
        ) as newest_commit_time

),

sources as (

    select * from recentchange
    union all
    select * from orders

),

final as (

    select
        sources.source,
        sources.newest_event_time,
        sources.newest_commit_time,
        boundary.boundary,
        date_diff('millisecond', sources.newest_event_time, current_timestamp) / 1000e0 as event_age_seconds,
        date_diff('millisecond', sources.newest_commit_time, current_timestamp) / 1000e0 as commit_age_seconds,
        date_diff('millisecond', boundary.boundary, current_timestamp) / 1000e0 as boundary_age_seconds
    from sources
    cross join boundary

)

select * from final
