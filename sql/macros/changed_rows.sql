{#- In an incremental run, the rows of `relation` whose key is new or whose value differs from the model's table:
    only those go into the MERGE, so a run replaces exactly the minutes that changed and a repeated run changes
    nothing. In a full build, every row. `current_filter` narrows the model's table to the rows that can match
    (the days being recomputed), so the comparison does not read the whole table. -#}
{% macro changed_rows(relation, keys, values, current_filter='true') -%}
    {%- if is_incremental() -%}
        select fresh.*
        from {{ relation }} as fresh
        left join (select * from {{ this }} where {{ current_filter }}) as current
            on {% for key in keys %}current.{{ key }} = fresh.{{ key }}{% if not loop.last %} and {% endif %}{% endfor %}
        where current.{{ keys[0] }} is null
        {%- for value in values %}
            or current.{{ value }} is distinct from fresh.{{ value }}
        {%- endfor %}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}
