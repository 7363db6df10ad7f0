{#- No two rows share the values of `columns` (dbt_utils' unique_combination_of_columns, without the package). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as copies
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
