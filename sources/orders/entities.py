"""The entities of a market: its profile (locale, currency, prices), restaurants, menus, couriers and customers.

The menu and the market profiles are data, ``menu.yaml`` beside this module (package data), read once on import.
Also the one place where a wiki is mapped to its market (:func:`market_for_wiki`). Imports nothing of airlake's
(PyYAML to read the data file; Faker lazily, when a market is built).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from airlake.settings import Settings
from airlake.settings.models import MarketsSettings

DEFAULT_MARKET: str = MarketsSettings.model_fields["default"].default
MENU_FILE = "menu.yaml"
"""The menu (cuisines, dishes, course weights) and the market profiles: a data file shipped in this package."""


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


def _load_menu() -> dict[str, Any]:
    """The package's data file :data:`MENU_FILE`, parsed."""
    import yaml

    return yaml.safe_load(resources.files(__package__).joinpath(MENU_FILE).read_text(encoding="utf-8"))


_MENU = _load_menu()

MARKET_PROFILES: dict[str, MarketProfile] = {name: MarketProfile(**p) for name, p in _MENU["markets"].items()}
FALLBACK_PROFILE = MarketProfile(**_MENU["fallback"])


def market_profile(market: str) -> MarketProfile:
    """The profile of a market; markets not listed in :data:`MARKET_PROFILES` look like Springfield."""
    return MARKET_PROFILES.get(market, FALLBACK_PROFILE)


def market_for_wiki(wiki: str, settings_or_mapping: Any) -> str:
    """Maps a wiki (``enwiki``) to its market (``new-york``): the one place this mapping is interpreted.

    Args:
        wiki: the ``wiki`` field of a recentchange event.
        settings_or_mapping: an :class:`airlake.settings.Settings` (``markets.wikis`` and ``markets.default``
            are read), the settings as a nested mapping (with a ``markets`` section), the ``markets`` section
            itself (``{"default": ..., "wikis": {...}}``) or a plain ``{wiki: market}`` mapping.

    Returns:
        The market of the wiki, or the default market (``markets.default``, else ``springfield``).
    """
    wikis, default = market_mapping(settings_or_mapping)
    return str(wikis.get(wiki, default))


def market_mapping(settings_or_mapping: Any) -> tuple[Mapping[str, str], str]:
    """The ``{wiki: market}`` mapping and the default market of anything :func:`market_for_wiki` takes."""
    if isinstance(settings_or_mapping, Settings):
        return settings_or_mapping.markets.wikis, settings_or_mapping.markets.default
    if not isinstance(settings_or_mapping, Mapping):
        raise TypeError(f"expected Settings or a mapping, got {type(settings_or_mapping).__name__}")
    section: Mapping[str, Any] = settings_or_mapping
    if isinstance(section.get("markets"), Mapping):
        section = section["markets"]
    if isinstance(section.get("wikis"), Mapping):
        return section["wikis"], str(section.get("default") or DEFAULT_MARKET)
    return section, DEFAULT_MARKET


# cuisine -> (restaurant name templates, dishes as (name, course, price in GBP)), in the data file's order
CUISINES: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, float], ...]]] = {
    cuisine: (
        tuple(entry["restaurant_names"]),
        tuple((str(name), str(course), float(price)) for name, course, price in entry["dishes"]),
    )
    for cuisine, entry in _MENU["cuisines"].items()
}
CUISINE_NAMES = tuple(CUISINES)
Colour = tuple[int, int, int]
PHOTO_PALETTES: dict[str, tuple[Colour, ...]] = {
    cuisine: tuple((int(r), int(g), int(b)) for r, g, b in entry["photo_palette"])
    for cuisine, entry in _MENU["cuisines"].items()
    if entry.get("photo_palette")
}
"""Per cuisine, the colours of its menu photos (table, plate, the food, the garnish last): see sources/photos.py."""
PHOTO_FALLBACK_PALETTE: tuple[Colour, ...] = tuple(
    (int(r), int(g), int(b)) for r, g, b in _MENU["photo_fallback_palette"]
)
COURSE_WEIGHTS: dict[str, float] = {course: float(weight) for course, weight in _MENU["course_weights"].items()}


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
