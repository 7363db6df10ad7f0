{#- A serving view over one per-minute aggregate: the batch layer's rows below the time boundary, the speed layer's
    latest firing at or above it (Apache Pinot's hybrid-table rule), with a `layer` column saying which side a row
    came from. "Latest" is ordered by the speed layer's firing sequence (`batch`, monotonic per writer across
    restarts), then `fired_at` (a restart re-fires open minutes under the last committed batch number).

    batch_model: the batch model (`batch_orders_minute`); speed_table: its speed source table (`orders_minute`);
    keys: the columns of one row (`window_start` first); measures: the aggregate's values. -#}
{% macro hybrid_minute(batch_model, speed_table, keys, measures) -%}
{%- set columns = (keys + measures) | join(', ') -%}
with

boundary as (

    select coalesce(max(boundary), timestamp '1970-01-01 00:00:00.000000 UTC') as boundary
    from {{ ref('batch_boundary') }}

),

batch_rows as (

    select {{ columns }}, 'batch' as layer
    from {{ ref(batch_model) }} as batch_minute
    cross join boundary
    where batch_minute.window_start < boundary.boundary

),

speed_firings as (

    select
        firing.*,
        row_number() over (
            partition by {% for key in keys %}firing.{{ key }}{% if not loop.last %}, {% endif %}{% endfor %}
            order by firing.batch desc, firing.fired_at desc
        ) as firing_rank
    from {{ source('speed', speed_table) }} as firing
    cross join boundary
    where firing.window_start >= boundary.boundary

),

speed_rows as (

    select {{ columns }}, 'speed' as layer
    from speed_firings
    where firing_rank = 1

),

final as (

    select * from batch_rows
    union all
    select * from speed_rows

)

select * from final
{%- endmacro %}
