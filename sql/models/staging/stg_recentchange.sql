with

source as (

    select * from {{ source('raw', 'recentchange') }}

),

ranked as (

    select
        *,
        row_number() over (partition by event_id, event_time order by ingested_at, sse_id) as copy_number
    from source

),

final as (

    select
        event_id,
        event_time,
        date_trunc('minute', event_time) as event_minute,
        wiki,
        {{ wiki_market('wiki') }} as market,
        type as change_type,
        coalesce(bot, false) as is_bot,
        coalesce(minor, false) as is_minor,
        namespace as page_namespace,
        title as page_title,
        user_name,
        case
            when length_new is not null and length_old is not null then length_new - length_old
            when length_new is not null then length_new
            else 0
        end as bytes_delta,
        ingested_at

    from ranked
    where copy_number = 1

)

select * from final
