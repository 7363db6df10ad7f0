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

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import hashlib
import heapq
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sources.sse_server import Pacing, add_pacing_arguments, log_identity, new_log_id
from sources.sse_server import pacing_from_args as sse_pacing_from_args

logger = logging.getLogger(__name__)

TOPIC = "airlake.orders"
STREAM_PATH = "/v2/stream/orders"
SCHEMA_VERSION = 1
DEFAULT_MARKET = "springfield"
DEFAULT_RETENTION = 2_000_000
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://herecomestheairplane.example/airlake/orders")

# Settings keys read by this module.
KEY_MARKETS_DEFAULT = "markets.default"
KEY_MARKETS_WIKIS = "markets.wikis"
KEY_ORDERS_PORT = "firehose.orders_port"
KEY_ORDERS_PER_EDIT = "firehose.orders_per_edit"
KEY_SEED = "firehose.seed"
KEY_HOST = "firehose.host"
KEY_DEMAND_URL = "sources.recentchange.url"
KEY_USER_AGENT = "sources.recentchange.user_agent"

PLACED = "placed"
ACCEPTED = "accepted"
PICKED_UP = "picked_up"
DELIVERED = "delivered"
CANCELLED = "cancelled"
EVENT_TYPES = (PLACED, ACCEPTED, PICKED_UP, DELIVERED, CANCELLED)
TERMINAL_EVENT_TYPES = frozenset({DELIVERED, CANCELLED})

MINUTE_MS = 60_000
DEDUPE_MINUTES = 10
"""Demand events repeated (same ``meta.id``) within this many minutes of event time are counted once."""


# ----------------------------------------------------------------------------------------------------
# Markets
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketProfile:
    """How a market looks: the Faker locale of its names, its currency, how prices are scaled and rounded."""

    locale: str
    currency: str
    price_factor: float
    """Local price of something that costs 1 GBP in London."""
    price_step_cents: int
    """Prices are rounded to a multiple of this many cents (minus one cent when ``charm`` is set)."""
    charm: bool = True


MARKET_PROFILES: dict[str, MarketProfile] = {
    "london": MarketProfile("en_GB", "GBP", 1.0, 10),
    "new-york": MarketProfile("en_US", "USD", 1.35, 10),
    "springfield": MarketProfile("en_US", "USD", 1.1, 10),
    "berlin": MarketProfile("de_DE", "EUR", 1.05, 10),
    "paris": MarketProfile("fr_FR", "EUR", 1.2, 10),
    "madrid": MarketProfile("es_ES", "EUR", 1.0, 10),
    "rome": MarketProfile("it_IT", "EUR", 1.05, 10),
    "tokyo": MarketProfile("ja_JP", "JPY", 150.0, 1000, charm=False),
    "sao-paulo": MarketProfile("pt_BR", "BRL", 4.5, 10),
}
FALLBACK_PROFILE = MarketProfile("en_US", "USD", 1.1, 10)


def market_profile(market: str) -> MarketProfile:
    """The profile of a market; markets not listed in :data:`MARKET_PROFILES` look like Springfield."""
    return MARKET_PROFILES.get(market, FALLBACK_PROFILE)


def market_for_wiki(wiki: str, settings_or_mapping: Any) -> str:
    """Maps a wiki (``enwiki``) to its market (``new-york``): the one place this mapping is interpreted.

    Args:
        wiki: the ``wiki`` field of a recentchange event.
        settings_or_mapping: an :class:`airlake.config.Settings` (``markets.wikis`` and ``markets.default``
            are read), the settings as a nested mapping (with a ``markets`` section), the ``markets`` section
            itself (``{"default": ..., "wikis": {...}}``) or a plain ``{wiki: market}`` mapping.

    Returns:
        The market of the wiki, or the default market (``markets.default``, else ``springfield``).
    """
    wikis, default = _market_mapping(settings_or_mapping)
    return str(wikis.get(wiki, default))


def _market_mapping(settings_or_mapping: Any) -> tuple[Mapping[str, str], str]:
    if hasattr(settings_or_mapping, "get") and not isinstance(settings_or_mapping, Mapping):
        wikis = settings_or_mapping.get(KEY_MARKETS_WIKIS) or {}
        default = settings_or_mapping.get(KEY_MARKETS_DEFAULT) or DEFAULT_MARKET
        return wikis, str(default)
    if not isinstance(settings_or_mapping, Mapping):
        raise TypeError(f"expected Settings or a mapping, got {type(settings_or_mapping).__name__}")
    section: Mapping[str, Any] = settings_or_mapping
    if isinstance(section.get("markets"), Mapping):
        section = section["markets"]
    if isinstance(section.get("wikis"), Mapping):
        return section["wikis"], str(section.get("default") or DEFAULT_MARKET)
    return section, DEFAULT_MARKET


# ----------------------------------------------------------------------------------------------------
# Entities
# ----------------------------------------------------------------------------------------------------

# cuisine -> (restaurant name templates, dishes as (name, course, price in GBP))
CUISINES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, float], ...]]] = {
    "pizza": (
        ("Pizzeria {last}", "{first}'s Pizza", "{city} Slice"),
        (
            ("Margherita", "main", 10.5),
            ("Diavola", "main", 12.5),
            ("Quattro Formaggi", "main", 13.0),
            ("Capricciosa", "main", 13.5),
            ("Funghi", "main", 11.5),
            ("Prosciutto e Rucola", "main", 14.0),
            ("Calzone", "main", 13.0),
            ("Marinara", "main", 9.5),
            ("Garlic Bread", "side", 4.5),
            ("Caprese Salad", "side", 6.5),
            ("Dough Balls", "side", 5.0),
            ("Tiramisu", "dessert", 5.5),
            ("Panna Cotta", "dessert", 5.0),
            ("San Pellegrino", "drink", 2.5),
            ("Peroni", "drink", 4.5),
        ),
    ),
    "burgers": (
        ("{last}'s Burgers", "{city} Burger Co.", "Grill {last}"),
        (
            ("Classic Cheeseburger", "main", 10.0),
            ("Double Smash Burger", "main", 13.5),
            ("Bacon BBQ Burger", "main", 12.5),
            ("Crispy Chicken Burger", "main", 11.5),
            ("Mushroom Swiss Burger", "main", 12.0),
            ("Veggie Burger", "main", 11.0),
            ("Fries", "side", 3.5),
            ("Sweet Potato Fries", "side", 4.5),
            ("Onion Rings", "side", 4.0),
            ("Chicken Wings", "side", 7.0),
            ("Coleslaw", "side", 2.5),
            ("Chocolate Milkshake", "drink", 5.0),
            ("Cola", "drink", 2.5),
            ("Brownie", "dessert", 4.5),
        ),
    ),
    "sushi": (
        ("{city} Sushi", "Sushi {last}", "{last} Sushi Bar"),
        (
            ("Salmon Nigiri Set", "main", 12.0),
            ("Tuna Maki", "main", 8.5),
            ("California Roll", "main", 9.0),
            ("Dragon Roll", "main", 13.5),
            ("Chirashi Bowl", "main", 16.0),
            ("Sashimi Platter", "main", 19.0),
            ("Chicken Katsu Curry", "main", 12.5),
            ("Edamame", "side", 4.0),
            ("Miso Soup", "side", 3.5),
            ("Gyoza", "side", 6.0),
            ("Seaweed Salad", "side", 5.0),
            ("Mochi", "dessert", 4.5),
            ("Green Tea", "drink", 2.5),
            ("Ramune", "drink", 3.0),
        ),
    ),
    "indian": (
        ("{last} Curry House", "Spice of {city}", "Tandoori {first}"),
        (
            ("Chicken Tikka Masala", "main", 12.0),
            ("Lamb Rogan Josh", "main", 13.5),
            ("Palak Paneer", "main", 10.5),
            ("Chana Masala", "main", 9.5),
            ("Chicken Biryani", "main", 13.0),
            ("Prawn Jalfrezi", "main", 14.0),
            ("Butter Chicken", "main", 12.5),
            ("Garlic Naan", "side", 3.5),
            ("Pilau Rice", "side", 3.5),
            ("Onion Bhaji", "side", 4.5),
            ("Vegetable Samosas", "side", 4.5),
            ("Mango Lassi", "drink", 3.5),
            ("Gulab Jamun", "dessert", 4.0),
        ),
    ),
    "chinese": (
        ("Golden {city} Dragon", "{last}'s Wok", "Jade Garden {last}"),
        (
            ("Kung Pao Chicken", "main", 11.0),
            ("Sweet and Sour Pork", "main", 10.5),
            ("Beef in Black Bean Sauce", "main", 12.0),
            ("Mapo Tofu", "main", 10.0),
            ("Crispy Duck Pancakes", "main", 14.5),
            ("Singapore Noodles", "main", 10.0),
            ("Egg Fried Rice", "side", 4.0),
            ("Spring Rolls", "side", 4.5),
            ("Prawn Crackers", "side", 2.5),
            ("Hot and Sour Soup", "side", 4.5),
            ("Dim Sum Basket", "side", 7.0),
            ("Jasmine Tea", "drink", 2.0),
            ("Lychee Sorbet", "dessert", 4.0),
        ),
    ),
    "thai": (
        ("{city} Thai Kitchen", "Baan {first}", "Thai Orchid {last}"),
        (
            ("Pad Thai", "main", 11.0),
            ("Green Curry", "main", 11.5),
            ("Massaman Curry", "main", 12.5),
            ("Pad Kra Pao", "main", 11.0),
            ("Tom Yum Soup", "main", 9.5),
            ("Khao Soi", "main", 12.0),
            ("Chicken Satay", "side", 6.0),
            ("Som Tam", "side", 6.5),
            ("Jasmine Rice", "side", 3.0),
            ("Fish Cakes", "side", 6.0),
            ("Mango Sticky Rice", "dessert", 5.5),
            ("Thai Iced Tea", "drink", 3.5),
        ),
    ),
    "mexican": (
        ("Taqueria {last}", "{first}'s Cantina", "El {city} Burrito"),
        (
            ("Carnitas Burrito", "main", 10.5),
            ("Chicken Burrito Bowl", "main", 10.0),
            ("Al Pastor Tacos", "main", 9.5),
            ("Fish Tacos", "main", 10.5),
            ("Beef Quesadilla", "main", 9.5),
            ("Vegetarian Enchiladas", "main", 10.0),
            ("Nachos", "side", 6.5),
            ("Guacamole and Chips", "side", 5.5),
            ("Elote", "side", 4.0),
            ("Churros", "dessert", 4.5),
            ("Horchata", "drink", 3.5),
            ("Jarritos", "drink", 3.0),
        ),
    ),
    "mediterranean": (
        ("{last}'s Grill", "Meze {city}", "The {last} Taverna"),
        (
            ("Chicken Souvlaki Plate", "main", 12.0),
            ("Lamb Kofta", "main", 13.0),
            ("Falafel Wrap", "main", 8.5),
            ("Halloumi Wrap", "main", 9.0),
            ("Chicken Shawarma", "main", 9.5),
            ("Moussaka", "main", 12.5),
            ("Hummus and Pitta", "side", 5.0),
            ("Greek Salad", "side", 6.5),
            ("Tabbouleh", "side", 5.0),
            ("Stuffed Vine Leaves", "side", 5.0),
            ("Baklava", "dessert", 4.5),
            ("Ayran", "drink", 2.5),
        ),
    ),
    "healthy": (
        ("{city} Greens", "Bowl {last}", "{first}'s Kitchen"),
        (
            ("Poke Bowl", "main", 11.5),
            ("Quinoa Salad", "main", 9.5),
            ("Chicken Caesar Salad", "main", 10.0),
            ("Buddha Bowl", "main", 10.5),
            ("Salmon Teriyaki Bowl", "main", 12.5),
            ("Avocado Toast", "main", 8.5),
            ("Sweet Potato Wedges", "side", 4.0),
            ("Soup of the Day", "side", 5.0),
            ("Green Smoothie", "drink", 5.0),
            ("Cold Brew", "drink", 3.5),
            ("Kombucha", "drink", 3.5),
            ("Acai Bowl", "dessert", 7.0),
        ),
    ),
    "breakfast": (
        ("{last}'s Cafe", "Morning {city}", "The {first} Bakery"),
        (
            ("Full Breakfast", "main", 11.0),
            ("Eggs Benedict", "main", 10.0),
            ("Pancake Stack", "main", 9.0),
            ("Breakfast Burrito", "main", 9.5),
            ("Shakshuka", "main", 10.5),
            ("Bagel with Salmon", "main", 8.5),
            ("Croissant", "side", 3.0),
            ("Granola Pot", "side", 4.5),
            ("Hash Browns", "side", 3.5),
            ("Flat White", "drink", 3.5),
            ("Fresh Orange Juice", "drink", 4.0),
            ("Cinnamon Bun", "dessert", 3.5),
        ),
    ),
}
CUISINE_NAMES = tuple(CUISINES)
COURSE_WEIGHTS = {"main": 6.0, "side": 2.5, "drink": 1.5, "dessert": 1.0}


@dataclass(frozen=True)
class MenuItem:
    """One dish on a restaurant's menu; ``price_cents`` in the market's currency."""

    item_id: str
    name: str
    course: str
    price_cents: int


@dataclass(frozen=True)
class Restaurant:
    """A restaurant of a market with its menu and how popular it is."""

    restaurant_id: str
    name: str
    cuisine: str
    popularity: float
    menu: tuple[MenuItem, ...]


@dataclass(frozen=True)
class Courier:
    """A courier of a market."""

    courier_id: str
    name: str


@dataclass
class Market:
    """The entities of one market, generated once from the seed.

    Customers are only ids (``cus-<market>-<nnnnn>``, numbered from 1 to ``customers``): the order events
    carry nothing else about them.
    """

    name: str
    profile: MarketProfile
    restaurants: tuple[Restaurant, ...]
    couriers: tuple[Courier, ...]
    customers: int
    _restaurant_cum: list[float] = field(default_factory=list, repr=False)
    _menu_cum: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        total = 0.0
        for restaurant in self.restaurants:
            total += restaurant.popularity
            self._restaurant_cum.append(total)
            acc = 0.0
            cum: list[float] = []
            for item in restaurant.menu:
                acc += COURSE_WEIGHTS.get(item.course, 1.0)
                cum.append(acc)
            self._menu_cum[restaurant.restaurant_id] = cum

    @property
    def currency(self) -> str:
        return self.profile.currency

    def customer_id(self, number: int) -> str:
        """The id of customer ``number`` (1-based)."""
        return f"cus-{self.name}-{number:05d}"

    def pick_restaurant(self, rng: random.Random) -> Restaurant:
        return rng.choices(self.restaurants, cum_weights=self._restaurant_cum)[0]

    def pick_items(self, restaurant: Restaurant, rng: random.Random) -> list[tuple[MenuItem, int]]:
        """A basket: 1-5 distinct dishes (mains more likely), mostly one of each."""
        wanted = rng.choices((1, 2, 3, 4, 5), weights=(30, 35, 20, 10, 5))[0]
        wanted = min(wanted, len(restaurant.menu))
        cum = self._menu_cum[restaurant.restaurant_id]
        chosen: list[MenuItem] = []
        while len(chosen) < wanted:
            item = rng.choices(restaurant.menu, cum_weights=cum)[0]
            if item not in chosen:
                chosen.append(item)
        return [(item, rng.choices((1, 2, 3), weights=(80, 15, 5))[0]) for item in chosen]

    def pick_customer(self, rng: random.Random) -> str:
        # Skewed towards low numbers: some customers order far more often than others.
        return self.customer_id(1 + int(self.customers * rng.random() ** 2))

    def pick_courier(self, rng: random.Random) -> Courier:
        return rng.choice(self.couriers)


def _price_cents(gbp: float, level: float, profile: MarketProfile) -> int:
    step = profile.price_step_cents
    cents = gbp * 100 * profile.price_factor * level
    rounded = max(step, int(round(cents / step)) * step)
    return rounded - 1 if profile.charm else rounded


def build_market(
    market: str,
    seed: int,
    *,
    restaurants: int = 40,
    items_per_restaurant: int = 12,
    couriers: int = 60,
    customers: int = 5_000,
) -> Market:
    """Generates the entities of a market with Faker in the market's locale, deterministically from the seed.

    Args:
        market: market name (``london``).
        seed: the generator's seed; with ``market`` it seeds Faker and the RNG.
        restaurants: number of restaurants.
        items_per_restaurant: menu items per restaurant (at most the dishes of its cuisine).
        couriers: number of couriers.
        customers: number of customers.

    Returns:
        The :class:`Market`.
    """
    from faker import Faker  # imported lazily: it takes a while to import

    profile = market_profile(market)
    fake = Faker(profile.locale)
    fake.seed_instance(f"{seed}/{market}/entities")
    rng = random.Random(f"{seed}/{market}/entities")
    built: list[Restaurant] = []
    for r in range(1, restaurants + 1):
        cuisine = CUISINE_NAMES[rng.randrange(len(CUISINE_NAMES))]
        templates, dishes = CUISINES[cuisine]
        name = rng.choice(templates).format(last=fake.last_name(), first=fake.first_name(), city=fake.city())
        level = rng.uniform(0.85, 1.3)
        rid = f"rst-{market}-{r:04d}"
        picked = sorted(rng.sample(range(len(dishes)), min(items_per_restaurant, len(dishes))))
        menu = tuple(
            MenuItem(
                item_id=f"{rid.replace('rst-', 'itm-', 1)}-{n:02d}",
                name=dishes[d][0],
                course=dishes[d][1],
                price_cents=_price_cents(dishes[d][2], level, profile),
            )
            for n, d in enumerate(picked, start=1)
        )
        built.append(Restaurant(rid, name, cuisine, rng.lognormvariate(0.0, 0.8), menu))
    crew = tuple(Courier(f"cur-{market}-{c:04d}", fake.name()) for c in range(1, couriers + 1))
    return Market(market, profile, tuple(built), crew, customers)


# ----------------------------------------------------------------------------------------------------
# Random draws and time formatting
# ----------------------------------------------------------------------------------------------------


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw: inversion for small means, Hörmann's PTRS (as numpy does) for large ones."""
    if lam <= 0:
        return 0
    if lam < 10:
        k = 0
        p = math.exp(-lam)
        s = p
        u = rng.random()
        while u > s:
            k += 1
            p *= lam / k
            s += p
            if p == 0.0:
                break
        return k
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = int(math.floor((2 * a / us + b) * u + lam + 0.43))
        if us >= 0.07 and v <= vr:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b) <= -lam + k * loglam - math.lgamma(k + 1):
            return k


def parse_event_time_ms(value: str) -> int:
    """Parses ``2018-03-07T16:16:17+00:00`` or ``2026-09-08T00:24:20.990Z`` into epoch milliseconds."""
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"event time {value!r} has no time zone")
    return round(parsed.timestamp() * 1000)


@functools.lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_event_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds and ``Z``."""
    seconds, millis = divmod(ms, 1000)
    return f"{_format_second(seconds)}.{millis:03d}Z"


_EVENT_ID_PREFIX = EVENT_ID_NAMESPACE.bytes


def event_id(seed: int, order_id: str, event_type: str) -> str:
    """The event id: ``uuid5(EVENT_ID_NAMESPACE, "<seed>/<order_id>/<event_type>")`` (computed directly)."""
    digest = bytearray(hashlib.sha1(_EVENT_ID_PREFIX + f"{seed}/{order_id}/{event_type}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _cents_to_number(cents: int) -> float:
    return round(cents / 100, 2)


# ----------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lifecycle:
    """The probabilities and delays (in minutes) of an order's lifecycle; about 5% of orders are cancelled."""

    accept_minutes: tuple[float, float] = (1.0, 5.0)
    pickup_minutes: tuple[float, float] = (8.0, 25.0)
    delivery_minutes: tuple[float, float] = (8.0, 35.0)
    p_customer_cancel: float = 0.01
    p_restaurant_reject: float = 0.02
    p_no_courier: float = 0.01
    p_delivery_failed: float = 0.01


@dataclass
class _Order:
    order_id: str
    market: str
    restaurant_id: str
    customer_id: str
    total_cents: int
    currency: str
    placed_ms: int
    demand_wiki: str
    items: list[dict[str, Any]]
    courier_id: str | None = None


@dataclass
class GeneratorStats:
    """Counters of an :class:`OrderGenerator`."""

    demand_events: int = 0
    skipped_events: int = 0
    late_events: int = 0
    duplicate_events: int = 0
    minutes_closed: int = 0
    orders: int = 0
    events: int = 0


class OrderGenerator:
    """Turns recentchange events (parsed dicts) into order lifecycle events, deterministically.

    Feed demand events with :meth:`feed` (each call returns the order events it released, in event-time order)
    and call :meth:`finish` at the end of the demand; or use :meth:`generate` on a whole iterable.
    """

    def __init__(
        self,
        *,
        seed: int = 42,
        markets: Any = None,
        orders_per_edit: float = 0.5,
        lifecycle: Lifecycle | None = None,
        lateness_seconds: float = 5.0,
        restaurants: int = 40,
        items_per_restaurant: int = 12,
        couriers: int = 60,
        customers: int = 5_000,
        id_namespace: str = "",
    ) -> None:
        """Creates a generator.

        Args:
            seed: the seed of every random draw and of the entities.
            markets: the wiki to market mapping, anything :func:`market_for_wiki` takes (settings, the
                ``markets`` section or a plain mapping); ``None`` maps every wiki to ``springfield``.
            orders_per_edit: mean orders per demand event.
            lifecycle: lifecycle probabilities and delays.
            lateness_seconds: how long after its end a minute stays open for late demand events.
            restaurants: restaurants per market.
            items_per_restaurant: menu items per restaurant.
            couriers: couriers per market.
            customers: customers per market.
            id_namespace: appended to every order id (``ord-...-<nnnn>-<namespace>``) when not empty, so that
                generators over different demand give different ids (see the module docstring).
        """
        if orders_per_edit < 0:
            raise ValueError("orders_per_edit must not be negative")
        self.seed = seed
        self.id_namespace = id_namespace
        self._wikis, self._default_market = _market_mapping(markets if markets is not None else {})
        self.orders_per_edit = orders_per_edit
        self.lifecycle = lifecycle or Lifecycle()
        self._lateness_ms = int(lateness_seconds * 1000)
        self._entity_sizes = {
            "restaurants": restaurants,
            "items_per_restaurant": items_per_restaurant,
            "couriers": couriers,
            "customers": customers,
        }
        self._markets: dict[str, Market] = {}
        self._counts: dict[tuple[int, str], dict[str, int]] = {}
        self._seen_ids: dict[int, set[str]] = {}
        self._heap: list[tuple[int, str, int, str, _Order, str | None]] = []
        self._clock_ms: int | None = None
        self._watermark_ms: int | None = None
        self._finished = False
        self.stats = GeneratorStats()

    # -- public ------------------------------------------------------------------------------------

    def market(self, name: str) -> Market:
        """The entities of a market, built on first use."""
        market = self._markets.get(name)
        if market is None:
            market = build_market(name, self.seed, **self._entity_sizes)
            self._markets[name] = market
        return market

    def market_for_wiki(self, wiki: str) -> str:
        """The market of a wiki under this generator's mapping."""
        return str(self._wikis.get(wiki, self._default_market))

    def parameters(self) -> dict[str, Any]:
        """What determines the generated events besides the demand: seed, mapping, rates, sizes, namespace."""
        return {
            "seed": self.seed,
            "wikis": dict(sorted(self._wikis.items())),
            "default_market": self._default_market,
            "orders_per_edit": self.orders_per_edit,
            "lifecycle": asdict(self.lifecycle),
            "lateness_ms": self._lateness_ms,
            "entities": self._entity_sizes,
            "id_namespace": self.id_namespace,
        }

    @property
    def demand_clock_ms(self) -> int | None:
        """The largest demand event time seen, in epoch milliseconds (``None`` before the first)."""
        return self._clock_ms

    def feed(self, demand: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Counts one recentchange event and returns the order events that became final, in time order.

        Events without ``wiki`` or a parseable ``meta.dt``, and canary events, are skipped; an event whose
        ``meta.id`` was seen in the last :data:`DEDUPE_MINUTES` minutes of event time is counted once.
        """
        if self._finished:
            raise RuntimeError("the generator has finished")
        meta = demand.get("meta")
        wiki = demand.get("wiki")
        if not isinstance(meta, Mapping) or not isinstance(wiki, str) or not wiki or meta.get("domain") == "canary":
            self.stats.skipped_events += 1
            return []
        dt = meta.get("dt")
        try:
            event_ms = parse_event_time_ms(dt) if isinstance(dt, str) else None
        except ValueError:
            event_ms = None
        if event_ms is None:
            self.stats.skipped_events += 1
            return []
        minute = event_ms - event_ms % MINUTE_MS
        unique_id = meta.get("id")
        if isinstance(unique_id, str):
            seen = self._seen_ids.setdefault(minute, set())
            if unique_id in seen:
                self.stats.duplicate_events += 1
                return []
            seen.add(unique_id)
        self.stats.demand_events += 1
        if self._watermark_ms is not None and minute < self._watermark_ms:
            self.stats.late_events += 1
            minute = self._watermark_ms
        per_wiki = self._counts.setdefault((minute, self.market_for_wiki(wiki)), {})
        per_wiki[wiki] = per_wiki.get(wiki, 0) + 1
        if self._clock_ms is not None and event_ms <= self._clock_ms:
            return []
        self._clock_ms = event_ms
        probe = event_ms - self._lateness_ms
        watermark = probe - probe % MINUTE_MS
        if self._watermark_ms is not None and watermark <= self._watermark_ms:
            return []
        self._watermark_ms = watermark
        for old in [m for m in self._seen_ids if m < watermark - DEDUPE_MINUTES * MINUTE_MS]:
            del self._seen_ids[old]
        self._close_minutes_before(watermark)
        return self._release_before(watermark)

    def finish(self) -> list[dict[str, Any]]:
        """Closes every open minute and returns all events still scheduled, in time order."""
        if self._finished:
            return []
        self._finished = True
        self._close_minutes_before(None)
        return self._release_before(None)

    def generate(self, demand: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Yields the order events of a whole demand iterable, flushing at its end."""
        for event in demand:
            yield from self.feed(event)
        yield from self.finish()

    # -- internals ---------------------------------------------------------------------------------

    def _close_minutes_before(self, watermark: int | None) -> None:
        due = sorted(key for key in self._counts if watermark is None or key[0] < watermark)
        for key in due:
            per_wiki = self._counts.pop(key)
            self._close_minute(key[0], key[1], per_wiki)

    def _close_minute(self, minute_ms: int, market_name: str, per_wiki: dict[str, int]) -> None:
        self.stats.minutes_closed += 1
        edits = sum(per_wiki.values())
        rng = random.Random(f"{self.seed}/{market_name}/{minute_ms}")
        n_orders = poisson(rng, self.orders_per_edit * edits)
        if n_orders == 0:
            return
        market = self.market(market_name)
        demand_wiki = min(per_wiki, key=lambda w: (-per_wiki[w], w))
        stamp = time.strftime("%Y%m%d%H%M", time.gmtime(minute_ms // 1000))
        offsets = sorted(rng.randrange(MINUTE_MS) for _ in range(n_orders))
        suffix = f"-{self.id_namespace}" if self.id_namespace else ""
        for n, offset in enumerate(offsets, start=1):
            order_id = f"ord-{market_name}-{stamp}-{n:04d}{suffix}"
            self._schedule(market, order_id, minute_ms + offset, demand_wiki, rng)
        self.stats.orders += n_orders

    def _schedule(self, market: Market, order_id: str, placed_ms: int, demand_wiki: str, rng: random.Random) -> None:
        restaurant = market.pick_restaurant(rng)
        basket = market.pick_items(restaurant, rng)
        items = [
            {
                "menu_item_id": item.item_id,
                "name": item.name,
                "quantity": quantity,
                "unit_price": _cents_to_number(item.price_cents),
            }
            for item, quantity in basket
        ]
        total = sum(item.price_cents * quantity for item, quantity in basket)
        order = _Order(
            order_id=order_id,
            market=market.name,
            restaurant_id=restaurant.restaurant_id,
            customer_id=market.pick_customer(rng),
            total_cents=total,
            currency=market.currency,
            placed_ms=placed_ms,
            demand_wiki=demand_wiki,
            items=items,
        )
        lc = self.lifecycle

        def after(start_ms: int, bounds: tuple[float, float]) -> int:
            return start_ms + max(1, round(rng.uniform(*bounds) * MINUTE_MS))

        stages: list[tuple[int, str, str | None]] = [(placed_ms, PLACED, None)]
        fate = rng.random()
        courier = market.pick_courier(rng).courier_id
        if fate < lc.p_customer_cancel:
            stages.append((after(placed_ms, (0.5, 3.0)), CANCELLED, "customer_cancelled"))
        elif fate < lc.p_customer_cancel + lc.p_restaurant_reject:
            stages.append((after(placed_ms, lc.accept_minutes), CANCELLED, "restaurant_rejected"))
        else:
            accepted_ms = after(placed_ms, lc.accept_minutes)
            stages.append((accepted_ms, ACCEPTED, None))
            fate -= lc.p_customer_cancel + lc.p_restaurant_reject
            if fate < lc.p_no_courier:
                stages.append((after(accepted_ms, (5.0, 20.0)), CANCELLED, "no_courier_available"))
            else:
                picked_ms = after(accepted_ms, lc.pickup_minutes)
                stages.append((picked_ms, PICKED_UP, None))
                fate -= lc.p_no_courier
                if fate < lc.p_delivery_failed:
                    stages.append((after(picked_ms, lc.delivery_minutes), CANCELLED, "delivery_failed"))
                else:
                    stages.append((after(picked_ms, lc.delivery_minutes), DELIVERED, None))
        for number, (at_ms, event_type, reason) in enumerate(stages):
            heapq.heappush(self._heap, (at_ms, order_id, number, event_type, order, reason))
        order.courier_id = courier

    def _release_before(self, watermark: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        heap = self._heap
        while heap and (watermark is None or heap[0][0] < watermark):
            at_ms, order_id, number, event_type, order, reason = heapq.heappop(heap)
            out.append(self._event(at_ms, number, event_type, order, reason))
        self.stats.events += len(out)
        return out

    def _event(self, at_ms: int, number: int, event_type: str, order: _Order, reason: str | None) -> dict[str, Any]:
        # The courier shows from the pickup (stage 2) on; an order cancelled before it never had one.
        has_courier = number >= 2 and not (event_type == CANCELLED and number == 2)
        event: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id(self.seed, order.order_id, event_type),
            "event_type": event_type,
            "event_time": format_event_time(at_ms),
            "order_id": order.order_id,
            "market": order.market,
            "restaurant_id": order.restaurant_id,
            "customer_id": order.customer_id,
            "courier_id": order.courier_id if has_courier else None,
        }
        if event_type == PLACED:
            event["items"] = order.items
        event["order_total"] = _cents_to_number(order.total_cents)
        event["currency"] = order.currency
        if event_type == DELIVERED:
            event["delivery_minutes"] = round((at_ms - order.placed_ms) / MINUTE_MS, 2)
        if event_type == CANCELLED:
            event["cancel_reason"] = reason
            event["cancelled_stage"] = (PLACED, ACCEPTED, PICKED_UP)[number - 1]
        event["demand_wiki"] = order.demand_wiki
        return event


def generator_from_settings(settings: Any, **overrides: Any) -> OrderGenerator:
    """An :class:`OrderGenerator` configured from settings (seed, orders per edit, markets) and overrides."""
    kwargs: dict[str, Any] = {
        "seed": int(settings.get(KEY_SEED, 42)),
        "orders_per_edit": float(settings.get(KEY_ORDERS_PER_EDIT, 0.5)),
        "markets": settings,
    }
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return OrderGenerator(**kwargs)


# ----------------------------------------------------------------------------------------------------
# Demand sources
# ----------------------------------------------------------------------------------------------------


def read_demand_file(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yields the recentchange events of a JSONL file; blank and malformed lines are skipped (and logged)."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("%s:%d: not JSON, skipped", path, number)
                continue
            if isinstance(event, dict):
                yield event


class SseDemand:
    """Recentchange events from an SSE URL (the live stream or the local replay firehose), canaries dropped.

    Reads through :class:`sources.sse.SseStream`, which reconnects with ``Last-Event-ID``; iterate it once. When
    the demand firehose was started again over another log (it refuses the position), reading goes on by event
    time from the newest demand event seen.
    """

    def __init__(self, url: str, *, user_agent: str, last_event_id: str | None = None, **stream_options: Any) -> None:
        self.url = url
        self.user_agent = user_agent
        self.last_event_id = last_event_id
        self.stream_options = stream_options
        self.malformed = 0
        self._stream: Any = None
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from sources.recentchange import is_canary
        from sources.sse import PositionNotInLog, SseStream

        last_event_id, params = self.last_event_id, dict(self.stream_options.pop("params", None) or {})
        newest: tuple[int, str] | None = None
        while True:
            self._stream = SseStream(
                self.url,
                last_event_id=last_event_id,
                params=params,
                user_agent=self.user_agent,
                drop=is_canary,
                **self.stream_options,
            )
            if self._closed.is_set():
                self._stream.close()
                return
            try:
                for message in self._stream:
                    if self._closed.is_set():
                        return
                    try:
                        event = json.loads(message.data)
                    except ValueError:
                        self.malformed += 1
                        continue
                    if not isinstance(event, dict):
                        continue
                    meta = event.get("meta")
                    dt = meta.get("dt") if isinstance(meta, dict) else None
                    if isinstance(dt, str):
                        with contextlib.suppress(ValueError):
                            at = parse_event_time_ms(dt)
                            if newest is None or at > newest[0]:
                                newest = (at, dt)
                    yield event
                return
            except PositionNotInLog as exc:
                if exc.position is None:
                    raise
                since = str(newest[0]) if newest is not None else None
                logger.warning(
                    "demand %s: %s; resuming by event time since %s",
                    self.url,
                    exc,
                    newest[1] if newest is not None else "the start of the log",
                )
                last_event_id, params = None, ({**params, "since": since} if since else params)

    def close(self) -> None:
        """Stops the stream (also from another thread)."""
        self._closed.set()
        if self._stream is not None:
            self._stream.close()


# ----------------------------------------------------------------------------------------------------
# The event log served over SSE
# ----------------------------------------------------------------------------------------------------


class OffsetOutOfRetention(LookupError):
    """A reader asked for an offset the log no longer holds."""


class OrderLog:
    """An in-memory event log of generated orders (topic ``airlake.orders``), for :class:`SseServer`.

    A background thread feeds the demand through an :class:`OrderGenerator` and appends the order events. The
    log keeps the newest ``retention`` events; offsets are absolute and never reused. ``log_id`` is the log's
    identity (see the module docstring).
    """

    topic = TOPIC

    def __init__(
        self,
        demand: Iterable[Mapping[str, Any]],
        generator: OrderGenerator,
        *,
        retention: int = DEFAULT_RETENTION,
        log_id: str | None = None,
    ) -> None:
        """Creates the log; call :meth:`start` to begin generating.

        Args:
            demand: the recentchange events (a file reader, an :class:`SseDemand`, or any iterable of dicts);
                if it has ``close()``, :meth:`close` calls it.
            generator: the order generator.
            retention: how many events to keep in memory.
            log_id: the log identity; default: a fresh random one (the demand may not be reproducible).
        """
        if retention < 1:
            raise ValueError("retention must be positive")
        self.log_id = log_id or new_log_id()
        self.demand = demand
        self.generator = generator
        self.retention = retention
        self.error: BaseException | None = None
        self._times: list[float] = []
        self._data: list[str] = []
        self._base = 0
        self._finished = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @classmethod
    def from_file(cls, path: str | Path, generator: OrderGenerator, **kwargs: Any) -> OrderLog:
        """A log whose demand is a JSONL file of recentchange events (deterministic, and so is its identity)."""
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        log_id = log_identity("orders", TOPIC, generator.parameters(), digest)
        return cls(read_demand_file(path), generator, log_id=log_id, **kwargs)

    @classmethod
    def from_url(
        cls,
        url: str,
        generator: OrderGenerator,
        *,
        user_agent: str,
        retention: int = DEFAULT_RETENTION,
        **stream_options: Any,
    ) -> OrderLog:
        """A log whose demand is an SSE stream of recentchange events read with :class:`SseStream`.

        Its identity is random (live demand cannot be replayed), and it becomes the generator's id namespace
        unless the generator has one, so that the order ids of two such logs never meet.
        """
        log_id = new_log_id()
        if not generator.id_namespace:
            generator.id_namespace = log_id
        demand = SseDemand(url, user_agent=user_agent, **stream_options)
        return cls(demand, generator, retention=retention, log_id=log_id)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OrderLog:
        """Starts generating in a background thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="order-generator", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stops generating (the log stays readable) and wakes blocked readers."""
        self._stopping.set()
        closer = getattr(self.demand, "close", None)
        if callable(closer):
            closer()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Waits until the demand is exhausted and every event is in the log; returns whether it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)

    @property
    def finished(self) -> bool:
        return self._finished

    def stats(self) -> dict[str, Any]:
        """Counters of the log and its generator (``SseServer`` shows them at ``/stats``)."""
        with self._cond:
            counts = {"events": self._base + len(self._data), "first_offset": self._base}
        return {
            **counts,
            "log_id": self.log_id,
            "finished": self._finished,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "generator": asdict(self.generator.stats),
        }

    def __len__(self) -> int:
        """The offset the next event will get (events ever appended)."""
        with self._cond:
            return self._base + len(self._data)

    @property
    def first_offset(self) -> int:
        """The oldest offset still retained."""
        with self._cond:
            return self._base

    def _run(self) -> None:
        try:
            for demand in self.demand:
                if self._stopping.is_set():
                    return
                released = self.generator.feed(demand)
                if released:
                    self._append(released)
            if not self._stopping.is_set():
                self._append(self.generator.finish())
        except Exception as exc:  # the reason is kept and logged; readers must not hang
            self.error = exc
            logger.exception("order generation stopped")
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()

    def _append(self, events: list[dict[str, Any]]) -> None:
        rows = [
            (
                parse_event_time_ms(e["event_time"]) / 1000,
                json.dumps(e, ensure_ascii=False, separators=(",", ":")),
            )
            for e in events
        ]
        with self._cond:
            for at, data in rows:
                self._times.append(at)
                self._data.append(data)
            excess = len(self._data) - self.retention
            # Trim in chunks so that appending stays amortised O(1).
            if excess > 0 and excess >= max(1, self.retention // 16):
                del self._times[:excess]
                del self._data[:excess]
                self._base += excess
            self._cond.notify_all()

    # -- EventLog ----------------------------------------------------------------------------------

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        """Yields ``(offset, event_time_epoch_seconds, data_json)`` from ``offset`` on, in order.

        Blocks for more while the demand is live; returns once the demand is finished and everything was read,
        or when ``stop`` is set.

        Raises:
            OffsetOutOfRetention: ``offset`` is older than the oldest retained event.
            ValueError: ``offset`` is negative.
        """
        if offset < 0:
            raise ValueError(f"offset must not be negative, got {offset}")
        position = offset
        while not stop.is_set():
            with self._cond:
                while position >= self._base + len(self._data) and not self._finished and not stop.is_set():
                    self._cond.wait(timeout=0.5)
                if position < self._base:
                    raise OffsetOutOfRetention(
                        f"offset {position} of {self.topic} is no longer retained "
                        f"(oldest is {self._base}, retention {self.retention} events)"
                    )
                start = position - self._base
                times = self._times[start : start + 1000]
                data = self._data[start : start + 1000]
                done = self._finished and not data
            if done:
                return
            for at, payload in zip(times, data, strict=True):
                if stop.is_set():
                    return
                yield position, at, payload
                position += 1

    def offset_for_time(self, epoch_seconds: float) -> int:
        """The offset of the first retained event at or after ``epoch_seconds`` (the end if there is none)."""
        with self._cond:
            return self._base + bisect.bisect_left(self._times, epoch_seconds)


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the flags of ``airlake firehose orders``."""
    parser.add_argument("--host", help="address to bind (default: firehose.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: firehose.orders_port, 8091; 0 picks one)")
    parser.add_argument("--seed", type=int, help="seed of the generator (default: firehose.seed)")
    demand = parser.add_mutually_exclusive_group()
    demand.add_argument(
        "--demand-url",
        metavar="URL",
        help="SSE stream of recentchange events (default: sources.recentchange.url)",
    )
    demand.add_argument(
        "--demand-file", type=Path, metavar="FILE.jsonl", help="a recording of recentchange events instead"
    )
    parser.add_argument(
        "--orders-per-edit", type=float, metavar="X", help="mean orders per demand event (firehose.orders_per_edit)"
    )
    add_pacing_arguments(parser, default="default: as fast as the orders are generated", times="the event times")
    parser.add_argument(
        "--drop-every",
        type=int,
        default=0,
        metavar="N",
        help="fault: close each connection abruptly after every N events sent on it",
    )
    parser.add_argument(
        "--retention",
        type=int,
        default=DEFAULT_RETENTION,
        metavar="N",
        help=f"events kept in memory for resuming clients (default {DEFAULT_RETENTION:,})",
    )


def pacing_from_args(args: argparse.Namespace) -> Pacing:
    """The pacing of ``airlake firehose orders``: none unless ``--rate`` or ``--speedup`` asks for it."""
    return sse_pacing_from_args(args, None)


def main(args: argparse.Namespace, settings: Any) -> int:
    """Runs ``airlake firehose orders`` until Ctrl-C or SIGTERM: generates orders and serves them over SSE.

    Args:
        args: the parsed flags (see :func:`add_arguments`).
        settings: the resolved :class:`airlake.config.Settings`.

    Returns:
        The exit status.
    """
    import signal

    from sources.sse_server import Faults, SseServer

    try:
        pacing = pacing_from_args(args)
        generator = generator_from_settings(settings, seed=args.seed, orders_per_edit=args.orders_per_edit)
    except ValueError as exc:
        print(f"airlake firehose orders: {exc}", flush=True)
        return 2
    if args.demand_file is not None:
        if not args.demand_file.is_file():
            print(f"airlake firehose orders: no demand file {args.demand_file}", flush=True)
            return 2
        log = OrderLog.from_file(args.demand_file, generator, retention=args.retention)
        demand_name = str(args.demand_file)
    else:
        demand_name = args.demand_url or str(settings.require(KEY_DEMAND_URL))
        log = OrderLog.from_url(
            demand_name,
            generator,
            user_agent=str(settings.require(KEY_USER_AGENT)),
            retention=args.retention,
            connect_timeout=float(settings.get("sources.recentchange.connect_timeout", 10.0)),
            read_timeout=float(settings.get("sources.recentchange.read_timeout", 60.0)),
            backoff_initial=float(settings.get("sources.recentchange.backoff_initial", 0.5)),
            backoff_max=float(settings.get("sources.recentchange.backoff_max", 30.0)),
        )
    host = args.host or str(settings.get(KEY_HOST) or "127.0.0.1")
    port = args.port if args.port is not None else int(settings.get(KEY_ORDERS_PORT, 8091))
    try:
        server = SseServer(host, port)
    except OSError as exc:
        print(f"airlake firehose orders: cannot listen on {host}:{port}: {exc}", flush=True)
        return 2
    server.add_stream(STREAM_PATH, log, pacing=pacing, faults=Faults(drop_every=args.drop_every))
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    previous = signal.signal(signal.SIGTERM, _on_signal)
    log.start()
    server.start()
    print(
        f"orders firehose serving at {server.url(STREAM_PATH)} (demand {demand_name}, seed {generator.seed}, "
        f"log {log.log_id}, "
        f"{generator.orders_per_edit:g} orders per edit); stats at {server.url('/stats')}",
        flush=True,
    )
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        log.close()
        signal.signal(signal.SIGTERM, previous)
        print("orders firehose stopped", flush=True)
    return 0
