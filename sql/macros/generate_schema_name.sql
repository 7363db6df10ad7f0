{#- The schemas are exactly staging, marts, batch and serving in the iceberg catalog: dbt's default would prefix
    them with the target's schema (serving_staging, ...). A model without a schema lands in the target's. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
