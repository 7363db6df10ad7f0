{#- The days a batch run recomputes for one raw source, as a predicate on `column` (an event time).

    `airlake batch` passes the variable batch_days: per source, half-open ranges of days [first, end) whose raw data
    changed since the previous run (read from the raw tables' Iceberg manifests), a step at a time so that one
    step's events fit in Trino's memory. A source without changes gets `false` (nothing is read). Without the
    variable (dbt run by hand), every day: `true`. The ranges are literals on the partition column, so Trino reads
    only those days' files, and a filter on the event time passes through the staging views' deduplication (it
    partitions by event id and event time). -#}
{% macro batch_days(source_name, column) -%}
    {%- set chosen = var('batch_days', none) -%}
    {%- if chosen is none -%}
        true
    {%- elif not chosen.get(source_name) -%}
        false
    {%- else -%}
        ({% for first, end in chosen[source_name] -%}
            ({{ column }} >= timestamp '{{ first }} 00:00:00 UTC' and {{ column }} < timestamp '{{ end }} 00:00:00 UTC')
            {%- if not loop.last %} or {% endif %}
        {%- endfor %})
    {%- endif -%}
{%- endmacro %}

{#- `for version as of` the snapshot of a raw table that `airlake batch` planned from (variable batch_seen), so that
    batch.sources_seen reads the planned data; nothing without it. -#}
{% macro batch_as_of(source_name) -%}
    {%- set snapshot = var('batch_seen', {}).get(source_name, {}).get('snapshot_id') -%}
    {%- if snapshot is not none %} for version as of {{ snapshot | int }}{% endif -%}
{%- endmacro %}
