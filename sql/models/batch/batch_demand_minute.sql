{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key=['window_start', 'market', 'wiki'],
    alias='demand_minute',
    on_schema_change='fail',
    properties={'partitioning': "ARRAY['day(window_start)']"},
) }}

-- depends_on: {{ ref('batch_sources_seen') }}

with

recentchange as (

    select * from {{ ref('stg_recentchange') }}
    where {{ batch_days('recentchange', 'event_time') }}

),

aggregated as (

    select
        event_minute as window_start,
        market,
        wiki,
        count(*) as events,
        count_if(change_type = 'edit') as edits,
        count_if(change_type = 'new') as new_pages,
        count_if(is_bot) as bot_events,
        sum(bytes_delta) as bytes_delta
    from recentchange
    group by 1, 2, 3

),

changed as (

    {{ changed_rows('aggregated', ['window_start', 'market', 'wiki'],
                    ['events', 'edits', 'new_pages', 'bot_events', 'bytes_delta'],
                    current_filter=batch_days('recentchange', 'window_start')) }}

),

final as (

    select * from changed

)

select * from final
