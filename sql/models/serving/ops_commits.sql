{#- One row per commit (Iceberg snapshot) of the raw and speed tables: when, what it added, the writer's batch,
    and the commit latency: seconds from the newest row ingested before an append to its commit (raw tables only;
    the speed tables carry no ingestion time). Trino's "$entries" table, which would map rows to their snapshot,
    fails on these tables in 476 ("sortOrderId" is null), so rows are matched by time. -#}

{%- set tables = [('raw', 'recentchange'), ('raw', 'orders'), ('raw', 'dead_letters'),
                  ('speed', 'demand_minute'), ('speed', 'orders_minute')] %}

{%- set catalog = source('raw', 'orders').database %}

with

{% for schema, table in tables %}
{{ schema }}_{{ table }} as (

    select
        '{{ schema }}.{{ table }}' as table_name,
        snapshot_id,
        cast(committed_at as timestamp(6) with time zone) as committed_at,
        operation,
        cast(element_at(summary, 'added-records') as bigint) as added_records,
        cast(element_at(summary, 'added-data-files') as bigint) as added_data_files,
        element_at(summary, 'airlake.writer') as writer
    from {{ catalog }}.{{ schema }}."{{ table }}$snapshots"

),

{% endfor %}

snapshots as (

{% for schema, table in tables %}
    select * from {{ schema }}_{{ table }}
    {% if not loop.last %}union all{% endif %}
{% endfor %}

),

{% for table in ['recentchange', 'orders'] %}
ingested_{{ table }} as (

    select 'raw.{{ table }}' as table_name, max(ingested_at) as ingested_at
    from {{ source('raw', table) }}
    group by date_trunc('second', ingested_at)

),

{% endfor %}

ingested as (

    select * from ingested_recentchange
    union all
    select * from ingested_orders

),

newest as (

    select
        snapshots.table_name,
        snapshots.snapshot_id,
        max(ingested.ingested_at) as newest_ingested_at
    from snapshots
    inner join ingested
        on ingested.table_name = snapshots.table_name
        and ingested.ingested_at <= snapshots.committed_at
        and ingested.ingested_at > snapshots.committed_at - interval '10' minute
    where snapshots.operation = 'append'
    group by 1, 2

),

final as (

    select
        snapshots.table_name,
        snapshots.snapshot_id,
        snapshots.committed_at,
        snapshots.operation,
        snapshots.writer,
        snapshots.added_records,
        snapshots.added_data_files,
        date_diff('millisecond', newest.newest_ingested_at, snapshots.committed_at) / 1000e0
            as commit_latency_seconds
    from snapshots
    left join newest
        on newest.table_name = snapshots.table_name and newest.snapshot_id = snapshots.snapshot_id

)

select * from final
