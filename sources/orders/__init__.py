"""The order firehose: food-delivery order lifecycle events generated from a demand signal.

Every wiki of the Wikimedia recentchange stream (live, replayed, or a JSONL recording) is a market and each edit a
hungry person; per market and minute of event time a Poisson number of orders is placed, each with a lifecycle
(placed, accepted, picked up, delivered, or cancelled), released in event-time order. The generator is a pure
function of (seed, demand, settings). How orders come about, the event schema and the order log:
``docs/orders.md``.

One module per room: :mod:`~sources.orders.entities` (markets, restaurants, menus, couriers; the menu and market
profiles are the data file ``menu.yaml``), :mod:`~sources.orders.generator`, :mod:`~sources.orders.demand`,
:mod:`~sources.orders.log` and :mod:`~sources.orders.cli` (``airlake firehose orders``). This package re-exports
their public names, so ``from sources.orders import OrderGenerator`` and the CLI registry's ``sources.orders``
(``add_arguments``, ``main``) keep working. Imports only its own modules.
"""

from airlake.sources.orders.cli import (
    STREAM_PATH,
    add_arguments,
    main,
    pacing_from_args,
)
from airlake.sources.orders.demand import SseDemand, read_demand_file
from airlake.sources.orders.entities import (
    COURSE_WEIGHTS,
    CUISINE_NAMES,
    CUISINES,
    DEFAULT_MARKET,
    FALLBACK_PROFILE,
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
from airlake.sources.orders.generator import (
    ACCEPTED,
    CANCELLED,
    DEDUPE_MINUTES,
    DELIVERED,
    EVENT_ID_NAMESPACE,
    EVENT_TYPES,
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
    order_count,
    parse_event_time_ms,
)
from airlake.sources.orders.log import DEFAULT_RETENTION, TOPIC, OffsetOutOfRetention, OrderLog

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
    "order_count",
    "read_demand_file",
]
