{#- dbt's test filter (a test's `where` config), plus one rule: in a run of `airlake batch` (the variable batch_days
    is set), a test on a staging view checks only the days that the step recomputes. Those are the rows the batch
    models just read, and a test over the whole lake would hold every event id in Trino's memory at once (the
    reason the batch layer works a step at a time). Without the variable, the tests read everything. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set sources = {'stg_orders': 'orders', 'stg_recentchange': 'recentchange'} -%}
    {%- set source_name = sources.get(relation.identifier) -%}
    {%- if source_name and var('batch_days', none) is not none -%}
        {%- set days = batch_days(source_name, 'event_time') -%}
        {%- set where = '(' ~ where ~ ') and ' ~ days if where else days -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
