{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='layer',
    alias='boundary',
    on_schema_change='fail',
) }}

{#- The time boundary: the event time below which the batch tables are complete.

    Rule: the minute floor of the oldest of the sources' newest event times that this batch run saw
    (batch.sources_seen, read before the batch models ran), and never lower than the boundary before. Every event
    older than it that was in the raw tables when the run started is in batch.demand_minute and
    batch.orders_minute; the minute it falls in may still be filling for the source that is behind, so it is the
    first minute the serving views take from the speed layer. This model runs after both batch models (dbt's graph)
    and only when they and their tests passed, so the boundary advances only after the batch tables are
    committed. One row (layer = 'batch'), replaced by one MERGE, and only when it moves. -#}

-- depends_on: {{ ref('batch_demand_minute') }}
-- depends_on: {{ ref('batch_orders_minute') }}

with

seen as (

    select * from {{ ref('batch_sources_seen') }}

),

candidate as (

    select
        date_trunc('minute', min(newest_event_time)) as boundary,
        max(newest_event_time) filter (where source = 'recentchange') as recentchange_newest_event_time,
        max(newest_event_time) filter (where source = 'orders') as orders_newest_event_time,
        max(seen_at) as seen_at,
        count(newest_event_time) as sources_with_events
    from seen

),

previous as (

    {% if is_incremental() %}
    select max(boundary) as boundary from {{ this }}
    {% else %}
    select cast(null as timestamp(6) with time zone) as boundary
    {% endif %}

),

final as (

    select
        'batch' as layer,
        candidate.boundary,
        candidate.recentchange_newest_event_time,
        candidate.orders_newest_event_time,
        candidate.seen_at,
        current_timestamp(6) as advanced_at
    from candidate
    cross join previous
    where candidate.boundary is not null
      and (previous.boundary is null or candidate.boundary > previous.boundary)

)

select * from final
