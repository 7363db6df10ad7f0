{{ config(materialized='table', alias='sources_seen') }}

{#- What the raw tables hold when a batch run starts, read before the batch models read them: the boundary is
    computed from this, so a batch model that reads a newer snapshot only ever sees more, never less, than the
    boundary claims (batch.boundary's rule). -#}

with

recentchange as (

    select
        'recentchange' as source,
        max(event_time) as newest_event_time,
        count(*) as raw_rows
    from {{ source('raw', 'recentchange') }}

),

orders as (

    select
        'orders' as source,
        max(event_time) as newest_event_time,
        count(*) as raw_rows
    from {{ source('raw', 'orders') }}

),

final as (

    select *, current_timestamp(6) as seen_at from recentchange
    union all
    select *, current_timestamp(6) as seen_at from orders

)

select * from final
