{#- One row per minute and market: batch rows below the boundary, the latest speed firing at or above it
    (macros/hybrid_minute.sql). -#}

{{ hybrid_minute(
    'batch_orders_minute',
    'orders_minute',
    ['window_start', 'market'],
    ['placed', 'accepted', 'picked_up', 'delivered', 'cancelled', 'gmv_placed', 'gmv_delivered',
     'delivery_minutes_sum'],
) }}
