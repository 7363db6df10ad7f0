{#- Dead letters per source, reason and minute. The reason is the error's text before its first colon (the kind of
    failure); the full error stays in raw.dead_letters. -#}

with

dead_letters as (

    select * from {{ source('ops', 'dead_letters') }}

),

final as (

    select
        source,
        trim(split_part(error, ':', 1)) as reason,
        date_trunc('minute', received_at) as minute,
        count(*) as dead_letters
    from dead_letters
    group by 1, 2, 3

)

select * from final
