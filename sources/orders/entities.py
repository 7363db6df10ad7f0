"""The entities of a market: its profile (locale, currency, prices), restaurants, menus, couriers and customers.

Also the one place where a wiki is mapped to its market (:func:`market_for_wiki`). Imports nothing of airlake's
(Faker lazily, when a market is built).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MARKET = "springfield"

# Settings keys read by this module.
KEY_MARKETS_DEFAULT = "markets.default"
KEY_MARKETS_WIKIS = "markets.wikis"


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
    wikis, default = market_mapping(settings_or_mapping)
    return str(wikis.get(wiki, default))


def market_mapping(settings_or_mapping: Any) -> tuple[Mapping[str, str], str]:
    """The ``{wiki: market}`` mapping and the default market of anything :func:`market_for_wiki` takes."""
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
