{{ config(materialized='table', alias='sources_seen') }}

{#- What the raw tables hold when a batch run starts, read before the batch models read them: the boundary is
    computed from this, so a batch model that reads a newer snapshot only ever sees more, never less, than the
    boundary claims (batch.boundary's rule).

    `airlake batch` passes, in the variable batch_seen, each raw table's Iceberg UUID and last sequence number as it
    read them when it chose the days to recompute; batch.boundary records them once the batch tables are committed,
    and the next run recomputes only the days of data files added after them (airlake.lake.changes). -#}

{%- set seen = var('batch_seen', {}) %}

with

recentchange as (

    select
        'recentchange' as source,
        max(event_time) as newest_event_time,
        count(*) as raw_rows
    from {{ source('raw', 'recentchange') }}{{ batch_as_of('recentchange') }}

),

orders as (

    select
        'orders' as source,
        max(event_time) as newest_event_time,
        count(*) as raw_rows
    from {{ source('raw', 'orders') }}{{ batch_as_of('orders') }}

),

tables as (

    select * from (
        values
        {%- for name in ['recentchange', 'orders'] %}
            {%- set state = seen.get(name, {}) %}
            {%- set uuid = state.get('table_uuid') %}
            {%- set number = state.get('sequence_number') %}
            (
                {{ sql_string(name) }},
                {% if uuid %}{{ sql_string(uuid) }}{% else %}cast(null as varchar){% endif %},
                {% if number is not none %}cast({{ number | int }} as bigint){% else %}cast(null as bigint){% endif %}
            ){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as t (source, table_uuid, sequence_number)

),

counted as (

    select * from recentchange
    union all
    select * from orders

),

final as (

    select
        counted.source,
        counted.newest_event_time,
        counted.raw_rows,
        tables.table_uuid,
        tables.sequence_number,
        current_timestamp(6) as seen_at
    from counted
    left join tables on tables.source = counted.source

)

select * from final
