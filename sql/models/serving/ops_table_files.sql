{#- Data files, bytes and rows of the current snapshot of every raw and speed table (what compaction reduces). -#}

{%- set tables = [('raw', 'recentchange'), ('raw', 'orders'), ('raw', 'dead_letters'),
                  ('speed', 'demand_minute'), ('speed', 'orders_minute')] %}

{%- set catalog = source('raw', 'orders').database %}

with

{% for schema, table in tables %}
{{ schema }}_{{ table }} as (

    select
        '{{ schema }}.{{ table }}' as table_name,
        count(*) as data_files,
        coalesce(sum(file_size_in_bytes), 0) as bytes,
        coalesce(sum(record_count), 0) as records
    from {{ catalog }}.{{ schema }}."{{ table }}$files"
    where content = 0

),

{% endfor %}

final as (

{% for schema, table in tables %}
    select * from {{ schema }}_{{ table }}
    {% if not loop.last %}union all{% endif %}
{% endfor %}

)

select * from final
