"""The order generator: demand events in, order lifecycle events out, as a pure function of (seed, demand, settings).

Holds :class:`OrderGenerator`, its :class:`Lifecycle` and the event ids and times. Imports
:mod:`sources.orders.entities`, :mod:`sources.photos` (the proof photo's id) and :mod:`sources.events` (the order event types, the canary test); numpy draws the
order counts.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from airlake.sources.events import (
    ACCEPTED,
    CANCELLED,
    DELIVERED,
    ORDER_EVENT_TYPES,
    PICKED_UP,
    PLACED,
    TERMINAL_ORDER_EVENT_TYPES,
    is_canary,
    uuid5,
)
from airlake.sources.orders.entities import Market, build_market, market_mapping
from airlake.sources.photos import PHOTOS_PATH, proof_photo_id

SCHEMA_VERSION = 1
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://herecomestheairplane.example/airlake/orders")

# Settings keys read by this module.

EVENT_TYPES = ORDER_EVENT_TYPES
"""The order event types (:data:`sources.events.ORDER_EVENT_TYPES`), under the name this package always had."""
TERMINAL_EVENT_TYPES = TERMINAL_ORDER_EVENT_TYPES

MINUTE_MS = 60_000
DEDUPE_MINUTES = 10
"""Demand events repeated (same ``meta.id``) within this many minutes of event time are counted once."""


# ----------------------------------------------------------------------------------------------------
# Random draws and time formatting
# ----------------------------------------------------------------------------------------------------


def order_count(seed: int, market: str, minute_ms: int, mean: float) -> int:
    """The number of orders placed in a market in a minute: a Poisson draw with the given mean.

    Drawn with numpy's sampler (:meth:`numpy.random.Generator.poisson`) from a generator seeded by the
    ``"<seed>/<market>/<minute_ms>"`` key alone, so the count is a function of that key and the mean: the same
    for a seed whatever the other markets and minutes do.
    """
    if mean <= 0:
        return 0
    key = hashlib.sha256(f"{seed}/{market}/{minute_ms}".encode()).digest()
    return int(np.random.default_rng(int.from_bytes(key[:8], "big")).poisson(mean))


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
    return uuid5(_EVENT_ID_PREFIX, f"{seed}/{order_id}/{event_type}")


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
        photo_base_url: str = "",
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
                generators over different demand give different ids (see ``docs/orders.md``).
            photo_base_url: the base of the ``proof_photo_url`` of ``delivered`` events (a CDN's
                ``https://host``); empty: the URL is the path ``/v1/photos/{id}``, resolved against the firehose's
                URL (so the events do not depend on the port it listens on).
        """
        if orders_per_edit < 0:
            raise ValueError("orders_per_edit must not be negative")
        self.seed = seed
        self.id_namespace = id_namespace
        self.photo_base_url = photo_base_url.rstrip("/")
        self._wikis, self._default_market = market_mapping(markets if markets is not None else {})
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
            **({"photo_base_url": self.photo_base_url} if self.photo_base_url else {}),
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
        if not isinstance(meta, Mapping) or not isinstance(wiki, str) or not wiki or is_canary(demand):
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
        n_orders = order_count(self.seed, market_name, minute_ms, self.orders_per_edit * edits)
        if n_orders == 0:
            return
        market = self.market(market_name)
        rng = random.Random(f"{self.seed}/{market_name}/{minute_ms}")
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
            photo = proof_photo_id(order.order_id, at_ms)
            event["proof_photo_id"] = photo
            event["proof_photo_url"] = f"{self.photo_base_url}{PHOTOS_PATH}{photo}"
        if event_type == CANCELLED:
            event["cancel_reason"] = reason
            event["cancelled_stage"] = (PLACED, ACCEPTED, PICKED_UP)[number - 1]
        event["demand_wiki"] = order.demand_wiki
        return event


def generator_from_settings(settings: Any, **overrides: Any) -> OrderGenerator:
    """An :class:`OrderGenerator` configured from settings (seed, orders per edit, markets) and overrides."""
    kwargs: dict[str, Any] = {
        "seed": settings.firehose.seed,
        "orders_per_edit": settings.firehose.orders_per_edit,
        "markets": settings,
    }
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return OrderGenerator(**kwargs)
