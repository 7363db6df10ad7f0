"""The order firehose: food-delivery order lifecycle events generated from a demand signal.

Here Comes The Airplane has no real orders yet, so the platform generates them. The demand signal is the
Wikimedia recentchange stream (live, or the local replay firehose, or a JSONL recording): every wiki is a
market (``markets.wikis`` in the settings, unmapped wikis go to ``markets.default``) and each edit is a hungry
person. The generator is a pure function of (seed, demand events, settings): its clock is the demand events'
event time (``meta.dt``), never the wall clock, and every random draw comes from a seeded RNG.

How orders come about:

* Demand events without ``wiki`` or ``meta.dt`` and canaries are skipped; a repeated ``meta.id`` (a resumed
  stream may repeat events) counts once. Every other event, whatever its ``type``, counts as one edit.
* The demand clock is the largest ``meta.dt`` seen so far. Edits are counted per market and minute; a minute
  closes once the clock passes its end by ``lateness_seconds`` (an edit for an already closed minute counts in
  the oldest open one).
* When a minute closes, the number of orders placed in that market in that minute is drawn from a Poisson
  distribution with mean ``orders_per_edit * edits`` (an RNG derived from the seed, the market and the
  minute), and their placement times are spread uniformly over the minute.
* Each order gets a lifecycle: ``placed`` -> ``accepted`` (1-5 min later) -> ``picked_up`` (8-25 min) ->
  ``delivered`` (8-35 min). About 5% of the orders end in ``cancelled`` instead, at some stage, with a
  ``cancel_reason``.
* Events wait in a heap and are released strictly in event-time order: an event is released once no later
  demand can produce an earlier one (its time is before the start of the oldest open minute). At the end of
  the demand everything still scheduled is flushed.

Event schema (one JSON object per event, ``schema_version`` 1):

- ``schema_version``: ``1``.
- ``event_id``: uuid5 of ``"<seed>/<order_id>/<event_type>"`` in :data:`EVENT_ID_NAMESPACE`; unique, stable.
- ``event_type``: ``placed`` | ``accepted`` | ``picked_up`` | ``delivered`` | ``cancelled``.
- ``event_time``: ISO-8601 UTC with milliseconds and ``Z`` (``2018-03-07T16:17:03.042Z``).
- ``order_id``: ``ord-<market>-<yyyymmddHHMM of placement>-<nnnn>``, followed by ``-<namespace>`` when the
  generator has an id namespace: an :class:`OrderLog` over a live demand URL sets it to its (random) log
  identity, so that two runs over different demand never give one order id to different orders; over a
  demand file the ids stay a function of the seed and the file.
- ``market``: the market (``london``, ``berlin``, ...).
- ``restaurant_id``: ``rst-<market>-<nnnn>``; ``customer_id``: ``cus-<market>-<nnnnn>``.
- ``courier_id``: ``cur-<market>-<nnnn>`` on ``picked_up``, ``delivered`` and a cancellation after the pickup;
  null before.
- ``items``: on ``placed`` only, a list of ``{menu_item_id, name, quantity, unit_price}``.
- ``order_total``: on every event, the sum of ``quantity * unit_price``, a number with two decimals.
- ``currency``: on every event, the ISO 4217 code of the market (GBP, EUR, USD, JPY, BRL).
- ``delivery_minutes``: on ``delivered`` only, minutes from ``placed`` to ``delivered`` (two decimals).
- ``cancel_reason``: on ``cancelled`` only: ``customer_cancelled`` (0.5-3 min after placing),
  ``restaurant_rejected`` (instead of accepting), ``no_courier_available`` (5-20 min after acceptance) or
  ``delivery_failed`` (instead of delivering).
- ``cancelled_stage``: on ``cancelled`` only, the last stage reached: ``placed``, ``accepted`` or ``picked_up``.
- ``demand_wiki``: the wiki with the most edits in the market and minute the order was placed in.

:class:`OrderLog` runs the generator over a demand source in a background thread and serves the result as an
event log (topic ``airlake.orders``) for :class:`sources.sse_server.SseServer`; ``airlake firehose orders``
serves it at ``/v2/stream/orders``. Its log identity (``log_id``, in every SSE id) is a hash of the seed, the
generator's parameters and the demand file's bytes when the demand is a file, and random per start when the
demand is a live URL (its content cannot be reproduced).
"""

from sources.orders.cli import (
    KEY_DEMAND_URL,
    KEY_HOST,
    KEY_ORDERS_PORT,
    KEY_USER_AGENT,
    STREAM_PATH,
    add_arguments,
    main,
    pacing_from_args,
)
from sources.orders.demand import SseDemand, read_demand_file
from sources.orders.entities import (
    COURSE_WEIGHTS,
    CUISINE_NAMES,
    CUISINES,
    DEFAULT_MARKET,
    FALLBACK_PROFILE,
    KEY_MARKETS_DEFAULT,
    KEY_MARKETS_WIKIS,
    MARKET_PROFILES,
    Courier,
    Market,
    MarketProfile,
    MenuItem,
    Restaurant,
    build_market,
    market_for_wiki,
    market_profile,
)
from sources.orders.generator import (
    ACCEPTED,
    CANCELLED,
    DEDUPE_MINUTES,
    DELIVERED,
    EVENT_ID_NAMESPACE,
    EVENT_TYPES,
    KEY_ORDERS_PER_EDIT,
    KEY_SEED,
    MINUTE_MS,
    PICKED_UP,
    PLACED,
    SCHEMA_VERSION,
    TERMINAL_EVENT_TYPES,
    GeneratorStats,
    Lifecycle,
    OrderGenerator,
    event_id,
    format_event_time,
    generator_from_settings,
    parse_event_time_ms,
    poisson,
)
from sources.orders.log import DEFAULT_RETENTION, TOPIC, OffsetOutOfRetention, OrderLog

__all__ = [
    "ACCEPTED",
    "CANCELLED",
    "COURSE_WEIGHTS",
    "CUISINES",
    "CUISINE_NAMES",
    "DEDUPE_MINUTES",
    "DEFAULT_MARKET",
    "DEFAULT_RETENTION",
    "DELIVERED",
    "EVENT_ID_NAMESPACE",
    "EVENT_TYPES",
    "FALLBACK_PROFILE",
    "KEY_DEMAND_URL",
    "KEY_HOST",
    "KEY_MARKETS_DEFAULT",
    "KEY_MARKETS_WIKIS",
    "KEY_ORDERS_PER_EDIT",
    "KEY_ORDERS_PORT",
    "KEY_SEED",
    "KEY_USER_AGENT",
    "MARKET_PROFILES",
    "MINUTE_MS",
    "PICKED_UP",
    "PLACED",
    "SCHEMA_VERSION",
    "STREAM_PATH",
    "TERMINAL_EVENT_TYPES",
    "TOPIC",
    "Courier",
    "GeneratorStats",
    "Lifecycle",
    "Market",
    "MarketProfile",
    "MenuItem",
    "OffsetOutOfRetention",
    "OrderGenerator",
    "OrderLog",
    "Restaurant",
    "SseDemand",
    "add_arguments",
    "build_market",
    "event_id",
    "format_event_time",
    "generator_from_settings",
    "main",
    "market_for_wiki",
    "market_profile",
    "pacing_from_args",
    "parse_event_time_ms",
    "poisson",
    "read_demand_file",
]
