{{ config(
    materialized='incremental',
    incremental_strategy='merge',
    unique_key='layer',
    alias='boundary',
    on_schema_change='append_new_columns',
) }}

{#- The time boundary: the event time below which the batch tables are complete.

    Rule: the minute floor of the oldest of the sources' newest event times that this batch run saw
    (batch.sources_seen, read before the batch models ran), and never lower than the boundary before. Every event
    older than it that was in the raw tables when the run started is in batch.demand_minute and
    batch.orders_minute; the minute it falls in may still be filling for the source that is behind, so it is the
    first minute the serving views take from the speed layer. This model runs after both batch models (dbt's graph)
    and only when they and their tests passed, so the boundary advances only after the batch tables are
    committed. One row (layer = 'batch'), replaced by one MERGE when the boundary moves or the raw tables moved.

    The row also records each raw table's Iceberg UUID and sequence number as the run read them (from
    batch.sources_seen): the next `airlake batch` recomputes only the days of data files added after them, so they
    too are written only here, after the batch tables are committed. -#}

-- depends_on: {{ ref('batch_demand_minute') }}
-- depends_on: {{ ref('batch_orders_minute') }}

{% set recorded_columns = [
    ('recentchange_table_uuid', 'varchar'),
    ('recentchange_sequence_number', 'bigint'),
    ('orders_table_uuid', 'varchar'),
    ('orders_sequence_number', 'bigint'),
] %}

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
        max(table_uuid) filter (where source = 'recentchange') as recentchange_table_uuid,
        max(sequence_number) filter (where source = 'recentchange') as recentchange_sequence_number,
        max(table_uuid) filter (where source = 'orders') as orders_table_uuid,
        max(sequence_number) filter (where source = 'orders') as orders_sequence_number
    from seen

),

previous as (

    {% if is_incremental() -%}
    {#- a boundary table from before the sequence numbers lacks their columns until this run adds them -#}
    {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    select
        {% if var('batch_reset_boundary', false) -%}
        -- a raw table was created again or rolled back: the boundary starts over from this run's
        cast(null as timestamp(6) with time zone) as boundary,
        {%- else -%}
        max(boundary) as boundary,
        {%- endif %}
        {%- for column, type in recorded_columns %}
        {% if column in existing %}max({{ column }}){% else %}cast(null as {{ type }}){% endif %} as {{ column }}
        {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from {{ this }}
    {%- else %}
    select
        cast(null as timestamp(6) with time zone) as boundary,
        {%- for column, type in recorded_columns %}
        cast(null as {{ type }}) as {{ column }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    {%- endif %}

),

final as (

    select
        'batch' as layer,
        greatest(candidate.boundary, coalesce(previous.boundary, candidate.boundary)) as boundary,
        candidate.recentchange_newest_event_time,
        candidate.orders_newest_event_time,
        candidate.seen_at,
        current_timestamp(6) as advanced_at,
        candidate.recentchange_table_uuid,
        candidate.recentchange_sequence_number,
        candidate.orders_table_uuid,
        candidate.orders_sequence_number
    from candidate
    cross join previous
    where candidate.boundary is not null
      and (
          previous.boundary is null
          or candidate.boundary > previous.boundary
          or candidate.recentchange_table_uuid is distinct from previous.recentchange_table_uuid
          or candidate.recentchange_sequence_number is distinct from previous.recentchange_sequence_number
          or candidate.orders_table_uuid is distinct from previous.orders_table_uuid
          or candidate.orders_sequence_number is distinct from previous.orders_sequence_number
      )

)

select * from final
