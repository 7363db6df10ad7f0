{#- A serving view over one per-minute aggregate: the batch layer's rows below the time boundary, the speed layer's
    latest firing at or above it (Apache Pinot's hybrid-table rule), with a `layer` column saying which side a row
    came from. "Latest" is ordered by the speed layer's firing sequence (`batch`, monotonic per writer across
    restarts), then `fired_at` (a restart re-fires open minutes under the last committed batch number).

    The boundary is written into the view as a literal, read from batch.boundary when dbt builds the view (dbt
    compiles a model just before it runs it, after batch.boundary in the same invocation), as Pinot's broker
    rewrites each query with the boundary it holds rather than reading it per query. `airlake batch` rebuilds the
    serving views in the step that advances the boundary. A view built with an older boundary is still right, only
    less of it comes from the batch layer: the boundary never moves back, and the speed tables keep every minute.
    Reading no boundary table per query saves Trino a table (its catalog lookup, metadata and planning) on every
    dashboard query: docs/benchmarks.md.

    batch_model: the batch model (`batch_orders_minute`); speed_table: its speed source table (`orders_minute`);
    keys: the columns of one row (`window_start` first); measures: the aggregate's values. -#}
{% macro hybrid_minute(batch_model, speed_table, keys, measures) -%}
{%- set columns = (keys + measures) | join(', ') -%}
{%- set boundary = served_boundary() -%}
-- the time boundary when this view was built (batch.boundary; 1970 before the first batch run)
with

batch_rows as (

    select {{ columns }}, 'batch' as layer
    from {{ ref(batch_model) }} as batch_minute
    where batch_minute.window_start < {{ boundary }}

),

speed_rows as (

    -- the latest firing of each key: one aggregation (max_by) rather than a window, which Trino plans and runs in
    -- about half the time; a key fires at most once per (batch, fired_at), so every measure comes from one firing
    select
        {% for key in keys %}firing.{{ key }}, {% endfor %}
        {%- for measure in measures %}
        max_by(firing.{{ measure }}, row(firing.batch, firing.fired_at)) as {{ measure }},
        {%- endfor %}
        'speed' as layer
    from {{ source('speed', speed_table) }} as firing
    where firing.window_start >= {{ boundary }}
    group by {% for key in keys %}firing.{{ key }}{% if not loop.last %}, {% endif %}{% endfor %}

),

final as (

    select * from batch_rows
    union all
    select * from speed_rows

)

select * from final
{%- endmacro %}


{#- The boundary in batch.boundary as a timestamp literal, read when the model runs (at parse time, and before the
    first batch run, the epoch: everything from the speed layer). -#}
{% macro served_boundary() -%}
    {%- set table = ref('batch_boundary') -%}
    {%- set value = none -%}
    {%- if execute and adapter.get_relation(database=table.database, schema=table.schema, identifier=table.identifier) -%}
        {%- set result = run_query("select cast(max(boundary) as varchar) from " ~ table) -%}
        {%- set value = result.columns[0].values()[0] -%}
    {%- endif -%}
    timestamp '{{ value if value else "1970-01-01 00:00:00.000000 UTC" }}'
{%- endmacro %}
