{#- One row per minute, market and wiki: batch rows below the boundary, the latest speed firing at or above it
    (macros/hybrid_minute.sql). -#}

{{ hybrid_minute(
    'batch_demand_minute',
    'demand_minute',
    ['window_start', 'market', 'wiki'],
    ['events', 'edits', 'new_pages', 'bot_events', 'bytes_delta'],
) }}
