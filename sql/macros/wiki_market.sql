{#- The market of a wiki, by the same map the speed layer uses (settings markets.wikis and markets.default, passed
    as the variables wiki_markets and default_market by airlake.stack.dbt). -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{% macro wiki_market(column) -%}
    {%- set markets = var('wiki_markets') -%}
    {%- if markets -%}
        case {{ column }}
        {%- for wiki, market in markets | dictsort %}
            when {{ sql_string(wiki) }} then {{ sql_string(market) }}
        {%- endfor %}
            else {{ sql_string(var('default_market')) }}
        end
    {%- else -%}
        {{ sql_string(var('default_market')) }}
    {%- endif -%}
{%- endmacro %}
