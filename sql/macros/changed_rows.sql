{#- In an incremental run, the rows of `relation` whose key is new or whose value differs from the model's table:
    only those go into the MERGE, so a run replaces exactly the minutes that changed and a repeated run changes
    nothing. In a full build, every row. -#}
{% macro changed_rows(relation, keys, values) -%}
    {%- if is_incremental() -%}
        select fresh.*
        from {{ relation }} as fresh
        left join {{ this }} as current
            on {% for key in keys %}current.{{ key }} = fresh.{{ key }}{% if not loop.last %} and {% endif %}{% endfor %}
        where current.{{ keys[0] }} is null
        {%- for value in values %}
            or current.{{ value }} is distinct from fresh.{{ value }}
        {%- endfor %}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}
