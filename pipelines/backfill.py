"""``airlake backfill``: generated history (demand and orders) for the whole days before today, in bulk.

For each of the N whole days (UTC) before today, one numpy pass per day builds:

- **demand**: recentchange events of every wiki mapped in ``markets.wikis``, as many per wiki and hour as the
  wikiticker day (``shared/data/wikimedia/wikiticker-2015-09-12-sampled.json.gz``: one real day, 51 Wikipedia
  editions) recorded, times the weekday's factor (:data:`WEEKDAY_FACTORS`), each count a Poisson draw; every event
  takes its title, user, comment, flags and size change from a real edit of that wiki that day (a mapped wiki the
  day lacks gets the whole day's hourly shape, the volume of its median wiki and edits drawn from all of it);
- **orders**: per market and minute a Poisson number of orders with mean ``orders_per_edit`` times the market's edits
  of that minute (``--orders-per-day N``: the rate that gives N orders a day on a week's average), each with the
  lifecycle, the restaurants, menus, prices, couriers and customers of the order model (:mod:`sources.orders`).

Rows are the normalizer's (:mod:`sources.normalize`) in the lake's schema (:mod:`lake.schemas`), ``raw_json`` the
event as its firehose would have sent it. They are committed through :func:`lake.commit.append_batch` under the
writer name :data:`BACKFILL_WRITER` (its own lease, its own marks), in chunks of at most :data:`CHUNK_ROWS` rows;
the commit of a chunk also records the day's progress in a table property (:data:`DAY_PROPERTY_PREFIX`), which,
unlike snapshot summaries, survives snapshot expiry: a rerun skips what an identical run committed and refuses to
mix another seed or rate into a day already filled. See ``docs/backfill.md``.

Imports :mod:`sources` (events, the order model's entities and lifecycle, the replay firehose's data folder), and
:mod:`lake` (schemas, commits, the lease).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from airlake.lake.commit import BatchMark, CommitError, append_batch
from airlake.lake.lease import DEFAULT_TTL_SECONDS, Lease, LeaseError
from airlake.lake.schemas import MONEY, ORDER_ITEM, ORDERS, RECENTCHANGE, TS
from airlake.sources import wikiticker
from airlake.sources.events import ACCEPTED, CANCELLED, DELIVERED, ORDER_EVENT_TYPES, PICKED_UP, PLACED
from airlake.sources.orders.entities import DEFAULT_MARKET, build_market
from airlake.sources.orders.generator import SCHEMA_VERSION, Lifecycle

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from airlake.settings import Settings

log = logging.getLogger(__name__)

BACKFILL_WRITER = "backfill"
"""The writer name of ``airlake backfill``: its lease and its batch marks (the speed pipeline's is ``speed``)."""

GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would generate other rows: a day filled by another version is refused."""

WEEKDAY_FACTORS = (0.92, 0.90, 0.93, 0.97, 1.10, 1.15, 1.03)
"""Demand (and so orders) of a Monday ... Sunday against the recorded day: a quieter start of the week, a Friday and
Saturday peak (food delivery's busiest evenings), Sunday above the weekdays. They average 1 over a week."""

CHUNK_ROWS = 250_000
"""At most this many rows per commit (one day's rows of a table are split into chunks of about equal size)."""

DAY_PROPERTY_PREFIX = "airlake.backfill.day."
"""Table property ``airlake.backfill.day.<YYYY-MM-DD>``: the day's arguments and chunks committed (JSON)."""

RECENTCHANGE_NAMESPACE = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://herecomestheairplane.example/airlake/backfill/rc"
).bytes
ORDERS_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://herecomestheairplane.example/airlake/backfill/orders").bytes
ORDER_ID_SUFFIX = "bf"
"""Order ids are ``ord-<market>-<yyyymmddHHMM>-<nnnn>-bf``: never one of the stream's (they carry no or another
suffix), and event ids are uuid5 in namespaces of the backfill's own."""

RECENTCHANGE_SCHEMA_URI = "/mediawiki/recentchange/1.0.0"
RECENTCHANGE_STREAM = "mediawiki.recentchange"
MINUTES_PER_DAY = 1440
DAY_MS = 86_400_000
# Canonical namespace numbers of MediaWiki; localized names (Benutzer, Discussion, ...) are not known: null.
NAMESPACE_NUMBERS = {
    "Main": 0, "Talk": 1, "User": 2, "User talk": 3, "Wikipedia": 4, "Wikipedia talk": 5, "File": 6,
    "File talk": 7, "MediaWiki": 8, "MediaWiki talk": 9, "Template": 10, "Template talk": 11, "Help": 12,
    "Help talk": 13, "Category": 14, "Category talk": 15, "Portal": 100, "Portal talk": 101, "Draft": 118,
    "Draft talk": 119, "Module": 828, "Module talk": 829,
}  # fmt: skip
SPECIAL_DOMAINS = {
    "wikidatawiki": "www.wikidata.org",
    "commonswiki": "commons.wikimedia.org",
    "metawiki": "meta.wikimedia.org",
    "mediawikiwiki": "www.mediawiki.org",
    "specieswiki": "species.wikimedia.org",
}
PROJECT_SUFFIXES = ("wiktionary", "wikibooks", "wikinews", "wikiquote", "wikisource", "wikiversity", "wikivoyage")
BASKET_SIZES, BASKET_WEIGHTS = (1, 2, 3, 4, 5), (30, 35, 20, 10, 5)  # as Market.pick_items
QUANTITIES, QUANTITY_WEIGHTS = (1, 2, 3), (80, 15, 5)
EVENT_TYPE_CODES = {kind: code for code, kind in enumerate(ORDER_EVENT_TYPES)}
CANCEL_REASONS = ("customer_cancelled", "restaurant_rejected", "no_courier_available", "delivery_failed")
"""The cancellation of each fate of an order (the generator's), in the order the fates are drawn."""


class BackfillError(RuntimeError):
    """The backfill cannot go on; ``str(exc)`` says why and what to do."""


# ----- the demand's shape: the wikiticker day --------------------------------------------------------------------
def wikiticker_path() -> Path:
    """The wikiticker recording in ``shared/data/wikimedia/``."""
    return Path(wikiticker.WIKITICKER_FILE)


def wiki_of_channel(channel: str) -> str:
    """``#en.wikipedia`` -> ``enwiki`` (``#be-x-old.wikipedia`` -> ``be_x_oldwiki``): the replay's own mapping."""
    found = wikiticker.wiki_of_channel(channel)
    if found is None:
        raise BackfillError(f"the wikiticker recording has a channel that names no wiki: {channel!r}")
    return found[0]


def domain_of_wiki(wiki: str) -> str:
    """The server name of a wiki: ``enwiki`` -> ``en.wikipedia.org``, ``wikidatawiki`` -> ``www.wikidata.org``."""
    if wiki in SPECIAL_DOMAINS:
        return SPECIAL_DOMAINS[wiki]
    for project in PROJECT_SUFFIXES:
        if wiki.endswith(project) and len(wiki) > len(project):
            return f"{wiki[: -len(project)].replace('_', '-')}.{project}.org"
    lang = wiki[:-4] if wiki.endswith("wiki") and len(wiki) > 4 else wiki
    return f"{lang.replace('_', '-')}.wikipedia.org"


def _read_wikiticker(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """The rows of the recording's day (the date most rows have; the dozen stray rows of other days are left out)."""
    import orjson

    if not path.is_file():
        raise BackfillError(f"the wikiticker recording is missing: {path}")
    with gzip.open(path, "rb") as f:
        rows = [orjson.loads(line) for line in f if line.strip()]
    days: dict[str, int] = {}
    for row in rows:
        days[row["time"][:10]] = days.get(row["time"][:10], 0) + 1
    day = max(days, key=lambda d: days[d])
    return day, [r for r in rows if r["time"].startswith(day)]


def wiki_hour_counts(path: Path | None = None) -> dict[str, np.ndarray]:
    """Edits per wiki and hour (UTC) of the wikiticker day: ``{wiki: array of 24 counts}``
    (:func:`airlake.sources.wikiticker.hourly_counts`, the replay's own reading of the day)."""
    counts = wikiticker.hourly_counts(path or wikiticker_path())
    return {wiki: np.asarray(hours, dtype=np.int64) for wiki, hours in counts.items()}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class EditSamples:
    """The real edits of the wikiticker day that generated demand events take their content from.

    Per edit: the row's columns (``type``, ``namespace``, ``title``, ``user_name``, ``bot``, ``minor``,
    ``patrolled``, ``delta``) and three pieces of the event's JSON (the URI path, and the two runs of fields between
    the generated ones), so that building millions of events is string concatenation in Arrow.
    """

    columns: dict[str, pa.Array]
    delta: np.ndarray
    is_new: np.ndarray
    uri_path: pa.Array
    head: pa.Array  # "type":...,"namespace":...,"title":...,"comment":...,
    tail: pa.Array  # "user":...,"bot":...,"minor":...,"patrolled":...,
    by_wiki: dict[str, np.ndarray]  # wiki -> indexes of its edits

    @classmethod
    def load(cls, path: Path | None = None) -> EditSamples:
        _, rows = _read_wikiticker(path or wikiticker_path())
        by_wiki: dict[str, list[int]] = {}
        cols: dict[str, list[Any]] = {k: [] for k in ("type", "namespace", "title", "comment", "user_name")}
        flags: dict[str, list[bool]] = {"bot": [], "minor": [], "patrolled": []}
        uri, head, tail, delta, is_new = [], [], [], [], []
        for i, row in enumerate(rows):
            by_wiki.setdefault(wiki_of_channel(row["channel"]), []).append(i)
            kind = "new" if row.get("isNew") else "edit"
            ns = NAMESPACE_NUMBERS.get(row.get("namespace") or "")
            title, comment, user = str(row.get("page") or ""), str(row.get("comment") or ""), str(row.get("user") or "")
            bot, minor, patrolled = bool(row.get("isRobot")), bool(row.get("isMinor")), not row.get("isUnpatrolled")
            for key, value in (("type", kind), ("namespace", ns), ("title", title), ("comment", comment)):
                cols[key].append(value)
            cols["user_name"].append(user)
            flags["bot"].append(bot)
            flags["minor"].append(minor)
            flags["patrolled"].append(patrolled)
            delta.append(int(row.get("delta") or 0))
            is_new.append(kind == "new")
            uri.append(_json(urllib.parse.quote(title.replace(" ", "_"), safe=":/()',!*@"))[1:-1])
            head.append(f'"type":"{kind}","namespace":{_json(ns)},"title":{_json(title)},"comment":{_json(comment)},')
            tail.append(
                f'"user":{_json(user)},"bot":{_json(bot)},"minor":{_json(minor)},"patrolled":{_json(patrolled)},'
            )
        columns = {
            "type": pa.array(cols["type"], pa.string()),
            "namespace": pa.array(cols["namespace"], pa.int32()),
            "title": pa.array(cols["title"], pa.string()),
            "comment": pa.array(cols["comment"], pa.string()),
            "user_name": pa.array(cols["user_name"], pa.string()),
            **{k: pa.array(v, pa.bool_()) for k, v in flags.items()},
        }
        return cls(
            columns,
            np.array(delta, dtype=np.int64),
            np.array(is_new, dtype=bool),
            pa.array(uri, pa.string()),
            pa.array(head, pa.string()),
            pa.array(tail, pa.string()),
            {w: np.array(ix, dtype=np.int64) for w, ix in by_wiki.items()},
        )


# ----- the markets: the order model's entities as flat arrays ----------------------------------------------------
@dataclass
class MarketArrays:
    """Every market's restaurants, menu items and couriers as flat arrays (global indexes across markets)."""

    names: list[str]
    currency: list[str]
    customers: np.ndarray  # per market
    rest_market: np.ndarray  # per restaurant: its market
    rest_cum: list[np.ndarray]  # per market: cumulative popularity of its restaurants
    rest_first: np.ndarray  # per market: index of its first restaurant
    rest_ids: pa.Array
    item_first: np.ndarray  # per restaurant: index of its first menu item
    item_count: np.ndarray  # per restaurant: number of menu items
    item_weight: np.ndarray  # per menu item: course weight
    item_cents: np.ndarray  # per menu item: price in cents
    item_ids: pa.Array
    item_names: pa.Array
    item_json_head: pa.Array  # {"menu_item_id":...,"name":...,"quantity":
    item_json_tail: pa.Array  # ,"unit_price":...}
    courier_first: np.ndarray  # per market
    courier_count: np.ndarray  # per market
    courier_ids: pa.Array

    @classmethod
    def build(cls, markets: Sequence[str], seed: int) -> MarketArrays:
        from airlake.sources.orders.entities import COURSE_WEIGHTS

        rest_market, rest_ids, rest_cum, rest_first = [], [], [], []
        item_first, item_count, item_weight, item_cents, item_ids, item_names = [], [], [], [], [], []
        head, tail, courier_ids, courier_first, courier_count, currency, customers = [], [], [], [], [], [], []
        for m, name in enumerate(markets):
            market = build_market(name, seed)
            currency.append(market.currency)
            customers.append(market.customers)
            rest_first.append(len(rest_ids))
            rest_cum.append(np.cumsum([r.popularity for r in market.restaurants]))
            for restaurant in market.restaurants:
                rest_market.append(m)
                rest_ids.append(restaurant.restaurant_id)
                item_first.append(len(item_ids))
                item_count.append(len(restaurant.menu))
                for item in restaurant.menu:
                    item_ids.append(item.item_id)
                    item_names.append(item.name)
                    item_weight.append(COURSE_WEIGHTS.get(item.course, 1.0))
                    item_cents.append(item.price_cents)
                    head.append(f'{{"menu_item_id":{_json(item.item_id)},"name":{_json(item.name)},"quantity":')
                    tail.append(f',"unit_price":{_cents_text(item.price_cents)}}}')
            courier_first.append(len(courier_ids))
            courier_count.append(len(market.couriers))
            courier_ids.extend(c.courier_id for c in market.couriers)
        return cls(
            list(markets),
            currency,
            np.array(customers, dtype=np.int64),
            np.array(rest_market, dtype=np.int64),
            rest_cum,
            np.array(rest_first, dtype=np.int64),
            pa.array(rest_ids, pa.string()),
            np.array(item_first, dtype=np.int64),
            np.array(item_count, dtype=np.int64),
            np.array(item_weight, dtype=np.float64),
            np.array(item_cents, dtype=np.int64),
            pa.array(item_ids, pa.string()),
            pa.array(item_names, pa.string()),
            pa.array(head, pa.string()),
            pa.array(tail, pa.string()),
            np.array(courier_first, dtype=np.int64),
            np.array(courier_count, dtype=np.int64),
            pa.array(courier_ids, pa.string()),
        )


# ----- vectorized pieces -----------------------------------------------------------------------------------------
def _cents_text(cents: int) -> str:
    """A price as the firehoses write it: Python's float repr of ``round(cents / 100, 2)``."""
    return repr(round(cents / 100, 2))


def cents_text(cents: np.ndarray) -> pa.Array:
    """:func:`_cents_text` of an array of non-negative cents, vectorized (``23.5``, ``23.0``, ``19.99``)."""
    whole = pc.cast(pa.array(cents // 100), pa.string())
    frac = cents % 100
    tens = frac % 10 == 0
    frac_text = pc.if_else(
        pa.array(tens),
        pc.cast(pa.array(frac // 10), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(frac), pa.string()), width=2, padding="0"),
    )
    return pc.binary_join_element_wise(whole, ".", frac_text, "")


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of string arrays and literal strings."""
    return pc.binary_join_element_wise(*parts, "")


def _text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES = (8, 12, 16, 20)  # hex digits before each dash of a UUID's text


def uuid5_many(namespace: bytes, names: pa.Array) -> pa.Array:
    """:func:`sources.events.uuid5` of every name (UTF-8), as one string array.

    The one per-event Python step is the SHA-1 itself (a C call on a slice of the names' buffer); the version bits and
    the text are set with numpy for all ids at once.
    """
    names = names.cast(pa.large_string()) if names.type != pa.large_string() else names
    names = pa.concat_arrays([names]) if names.offset else names
    n = len(names)
    if n == 0:
        return pa.array([], pa.string())
    _, offsets_buf, data_buf = names.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1).tolist()
    data = data_buf.to_pybytes() if data_buf is not None else b""
    sha1 = hashlib.sha1
    digests = b"".join([sha1(namespace + data[a:b]).digest() for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
    raw = np.frombuffer(digests, dtype=np.uint8).reshape(n, 20)[:, :16].copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    start = 0
    for part, end in enumerate((*_DASHES, 32)):
        text[:, start + part : end + part] = digits[:, start:end]
        start = end
    offsets_out = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 36).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets_out, pa.py_buffer(text.tobytes())])


def _ids(namespace: bytes, names: pa.Array) -> pa.Array:
    return uuid5_many(namespace, names)


def _timestamps(ms: np.ndarray) -> pa.Array:
    return pa.array(ms * 1000, TS)


def _iso_ms(ms: np.ndarray) -> pa.Array:
    """``2026-11-30T12:34:56.789Z`` for epoch milliseconds."""
    text = pc.cast(pa.array(ms, pa.timestamp("ms")), pa.string())  # 2026-11-30 12:34:56.789 (strftime is slower)
    return _join(pc.replace_substring(text, " ", "T", max_replacements=1), "Z")


def _money(cents: np.ndarray) -> pa.Array:
    """A decimal(12, 2) array whose unscaled values are ``cents`` (no float in between)."""
    buf = np.zeros((len(cents), 2), dtype=np.int64)
    buf[:, 0] = cents
    buf[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(MONEY, len(cents), [None, pa.py_buffer(buf.tobytes())])


def _pick(rng: np.random.Generator, values: Sequence[int], weights: Sequence[float], n: int) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return np.asarray(values)[rng.choice(len(values), size=n, p=p / p.sum())]


# ----- one day --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What determines the generated rows besides the day: recorded with every filled day."""

    seed: int
    orders_per_day: int | None
    orders_per_edit: float
    wikis: Mapping[str, str]

    def fingerprint(self) -> dict[str, Any]:
        """What a filled day records of the run: a rerun whose fingerprint differs must not add to that day."""
        mapping = json.dumps(dict(sorted(self.wikis.items())), sort_keys=True)
        return {
            "version": GENERATOR_VERSION,
            "seed": self.seed,
            "orders_per_day": self.orders_per_day,
            "orders_per_edit": None if self.orders_per_day is not None else self.orders_per_edit,
            "wikis": hashlib.sha256(mapping.encode()).hexdigest()[:16],
            "markets": len(set(self.wikis.values())),
        }


def describe(fingerprint: Mapping[str, Any]) -> str:
    """A fingerprint in words, for the error that refuses to mix two backfills in a day."""
    rate = (
        f"--orders-per-day {fingerprint['orders_per_day']}"
        if fingerprint.get("orders_per_day") is not None
        else f"orders_per_edit {fingerprint.get('orders_per_edit')}"
    )
    return (
        f"seed {fingerprint.get('seed')}, {rate}, markets.wikis {fingerprint.get('wikis')} "
        f"({fingerprint.get('markets')} markets), generator version {fingerprint.get('version')}"
    )


@dataclass
class Day:
    """One generated day: its rows per table (sorted by event time)."""

    day: date
    recentchange: pa.Table
    orders: pa.Table
    orders_placed: int


class HistoryGenerator:
    """Generates a day of demand and orders as Arrow tables, deterministically for a :class:`Plan`."""

    def __init__(
        self, plan: Plan, *, samples: EditSamples | None = None, counts: Mapping[str, np.ndarray] | None = None
    ):
        if not plan.wikis:
            raise BackfillError("markets.wikis maps no wiki to a market: there is no market to backfill")
        if plan.seed < 0:
            raise BackfillError(f"the seed must not be negative: {plan.seed}")
        self.plan = plan
        self.samples = samples or EditSamples.load()
        counts = dict(counts if counts is not None else wiki_hour_counts())
        self.wikis = sorted(plan.wikis)
        self.markets = sorted(set(plan.wikis.values()))
        self.wiki_market = np.array([self.markets.index(plan.wikis[w]) for w in self.wikis], dtype=np.int64)
        whole_day = np.sum(list(counts.values()), axis=0).astype(np.float64)
        median = float(np.median([c.sum() for c in counts.values()]))
        shape = np.zeros((len(self.wikis), 24))
        for i, wiki in enumerate(self.wikis):
            recorded = counts.get(wiki)
            shape[i] = recorded if recorded is not None and recorded.sum() else whole_day / whole_day.sum() * median
        self.hourly = shape  # expected edits per wiki and hour of an average day
        self.lifecycle = Lifecycle()
        self.entities = MarketArrays.build(self.markets, plan.seed)
        edits = self.hourly.sum()
        self.orders_per_edit = plan.orders_per_day / edits if plan.orders_per_day is not None else plan.orders_per_edit
        self.domains = [domain_of_wiki(w) for w in self.wikis]
        self.wiki_tail = pa.array(
            [f',"server_name":"{d}","wiki":{_json(w)}}}' for d, w in zip(self.domains, self.wikis, strict=True)]
        )

    def rng(self, day: date, stream: int) -> np.random.Generator:
        """The random generator of one day's demand (``stream`` 1) or orders (2): a function of the seed and day."""
        return np.random.default_rng([self.plan.seed, day.toordinal(), stream])

    def generate(self, day: date) -> Day:
        """The demand and orders of ``day`` (UTC), each table sorted by event time."""
        day_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        demand, wiki, event_ms = self.demand(day, day_ms)
        orders, placed = self.orders(day, day_ms, wiki, event_ms)
        return Day(day, demand, orders, placed)

    # ----- demand ---------------------------------------------------------------------------------------------
    def demand(self, day: date, day_ms: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """The day's recentchange rows, and each event's wiki index and time (epoch ms) for the orders."""
        rng = self.rng(day, 1)
        factor = WEEKDAY_FACTORS[day.weekday()]
        per_hour = rng.poisson(self.hourly * factor)  # (wikis, 24)
        wiki = np.repeat(np.repeat(np.arange(len(self.wikis)), 24), per_hour.ravel())
        hour = np.repeat(np.tile(np.arange(24), len(self.wikis)), per_hour.ravel())
        event_ms = day_ms + hour * 3_600_000 + rng.integers(0, 3_600_000, size=len(wiki))
        order = np.lexsort((wiki, event_ms))
        wiki, event_ms = wiki[order], event_ms[order]
        n = len(wiki)
        sample = np.empty(n, dtype=np.int64)
        everything = len(self.samples.delta)
        for w, name in enumerate(self.wikis):
            mine = np.flatnonzero(wiki == w)
            pool = self.samples.by_wiki.get(name)
            if pool is None:
                sample[mine] = rng.integers(0, everything, size=len(mine))
            else:
                sample[mine] = pool[rng.integers(0, len(pool), size=len(mine))]
        s = pa.array(sample)
        w_arr = pa.array(wiki)
        is_new = self.samples.is_new[sample]
        delta = self.samples.delta[sample]
        length_old = np.exp(rng.normal(8.5, 1.2, size=n)).astype(np.int64) + 1
        length_new = np.where(is_new, np.maximum(delta, 0), np.maximum(length_old + delta, 0))
        base = (day.toordinal() - date(2020, 1, 1).toordinal()) * 10_000_000
        number = np.arange(n, dtype=np.int64)
        rc_id = 1_000_000_000 + base + number
        revision_new = 2_000_000_000 + base + number
        revision_old = revision_new - rng.integers(1, 5_000_000, size=n)
        names = _join(f"{self.plan.seed}/{day.isoformat()}/", _text(number))
        ids = _ids(RECENTCHANGE_NAMESPACE, names)
        dt = _iso_ms(event_ms)
        domains = pa.array(self.domains).take(w_arr)
        new_mask = pa.array(is_new)
        length_json = pc.if_else(
            new_mask,
            _join('{"new":', _text(length_new), "}"),
            _join('{"old":', _text(length_old), ',"new":', _text(length_new), "}"),
        )
        revision_json = pc.if_else(
            new_mask,
            _join('{"new":', _text(revision_new), "}"),
            _join('{"old":', _text(revision_old), ',"new":', _text(revision_new), "}"),
        )
        raw = _join(
            f'{{"$schema":"{RECENTCHANGE_SCHEMA_URI}","meta":{{"uri":"https://',
            domains,
            "/wiki/",
            self.samples.uri_path.take(s),
            '","id":"',
            ids,
            '","domain":"',
            domains,
            f'","stream":"{RECENTCHANGE_STREAM}","dt":"',
            dt,
            '"},"id":',
            _text(rc_id),
            ",",
            self.samples.head.take(s),
            '"timestamp":',
            _text(event_ms // 1000),
            ",",
            self.samples.tail.take(s),
            '"length":',
            length_json,
            ',"revision":',
            revision_json,
            self.wiki_tail.take(w_arr),
        )
        cols = self.samples.columns
        ingested_ms = event_ms + rng.integers(200, 3_000, size=n)
        table = pa.Table.from_arrays(
            [
                ids,
                _timestamps(event_ms),
                pa.array(self.wikis).take(w_arr),
                cols["type"].take(s),
                domains,
                domains,
                cols["namespace"].take(s),
                cols["title"].take(s),
                cols["user_name"].take(s),
                cols["bot"].take(s),
                cols["minor"].take(s),
                cols["patrolled"].take(s),
                pa.array(np.where(is_new, 0, length_old), mask=is_new),
                pa.array(length_new),
                pa.array(np.where(is_new, 0, revision_old), mask=is_new),
                pa.array(revision_new),
                pa.array(rc_id),
                cols["comment"].take(s),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.string()),
                pa.repeat(pa.scalar(RECENTCHANGE_SCHEMA_URI), n),
                pa.repeat(pa.scalar(RECENTCHANGE_STREAM), n),
                pa.nulls(n, pa.string()),
                _timestamps(ingested_ms),
                raw,
            ],
            schema=RECENTCHANGE.schema,
        )
        return table, wiki, event_ms

    # ----- orders ---------------------------------------------------------------------------------------------
    def orders(self, day: date, day_ms: int, wiki: np.ndarray, event_ms: np.ndarray) -> tuple[pa.Table, int]:
        """The order events of the orders placed on the day, following the demand; returns them and the orders."""
        rng = self.rng(day, 2)
        e = self.entities
        n_markets = len(self.markets)
        minute = (event_ms - day_ms) // 60_000
        # Edits per (wiki, minute), then per (market, minute).
        per_wiki = np.bincount(wiki * MINUTES_PER_DAY + minute, minlength=len(self.wikis) * MINUTES_PER_DAY).reshape(
            len(self.wikis), MINUTES_PER_DAY
        )
        per_market = np.zeros((n_markets, MINUTES_PER_DAY), dtype=np.int64)
        np.add.at(per_market, self.wiki_market, per_wiki)
        # The wiki with most edits in a market's minute (ties: the first name), as the order generator's demand_wiki.
        demand_wiki = np.zeros((n_markets, MINUTES_PER_DAY), dtype=np.int64)
        for m in range(n_markets):
            mine = np.flatnonzero(self.wiki_market == m)  # sorted by name already
            demand_wiki[m] = mine[np.argmax(per_wiki[mine], axis=0)]
        counts = rng.poisson(self.orders_per_edit * per_market)  # (markets, minutes)
        market = np.repeat(np.repeat(np.arange(n_markets), MINUTES_PER_DAY), counts.ravel())
        order_minute = np.repeat(np.tile(np.arange(MINUTES_PER_DAY), n_markets), counts.ravel())
        o = len(market)
        offset = rng.integers(0, 60_000, size=o)
        order = np.lexsort((offset, order_minute, market))
        market, order_minute, offset = market[order], order_minute[order], offset[order]
        placed = day_ms + order_minute * 60_000 + offset
        group = market * MINUTES_PER_DAY + order_minute
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if o else np.array([], dtype=np.int64)
        number = np.arange(o) - np.repeat(starts, np.diff(np.r_[starts, o])) + 1
        hhmm = (order_minute // 60) * 100 + order_minute % 60
        stamp = _join(day.strftime("%Y%m%d"), pc.utf8_lpad(_text(hhmm), width=4, padding="0"))
        m_arr = pa.array(market)
        market_names = pa.array(self.markets).take(m_arr)
        order_ids = _join(
            "ord-",
            market_names,
            "-",
            stamp,
            "-",
            pc.utf8_lpad(_text(number), width=4, padding="0"),
            f"-{ORDER_ID_SUFFIX}",
        )
        # Restaurant: by popularity within the market.
        rest = np.empty(o, dtype=np.int64)
        u = rng.random(o)
        for m in range(n_markets):
            mine = np.flatnonzero(market == m)
            cum = e.rest_cum[m]
            rest[mine] = e.rest_first[m] + np.minimum(
                np.searchsorted(cum, u[mine] * cum[-1], side="right"), len(cum) - 1
            )
        # Basket: 1-5 distinct dishes weighted by course (Gumbel top-k), quantities 1-3.
        width = int(e.item_count.max()) if len(e.item_count) else 1
        wanted = np.minimum(_pick(rng, BASKET_SIZES, BASKET_WEIGHTS, o), e.item_count[rest])
        slot = np.arange(width)
        valid = slot[None, :] < e.item_count[rest][:, None]
        item_index = e.item_first[rest][:, None] + np.minimum(slot[None, :], e.item_count[rest][:, None] - 1)
        keys = np.where(valid, np.log(e.item_weight[item_index]) + rng.gumbel(size=(o, width)), -np.inf)
        ranked = np.argsort(-keys, axis=1, kind="stable")
        take = slot[None, :] < wanted[:, None]
        line_item = np.take_along_axis(item_index, ranked, axis=1)[take]  # grouped by order
        line_qty = _pick(rng, QUANTITIES, QUANTITY_WEIGHTS, len(line_item))
        line_order = np.repeat(np.arange(o), wanted)
        total_cents = np.bincount(line_order, weights=e.item_cents[line_item] * line_qty, minlength=o).astype(np.int64)
        offsets = pa.array(np.r_[0, np.cumsum(wanted)].astype(np.int32))
        li = pa.array(line_item)
        items = pa.ListArray.from_arrays(
            offsets,
            pa.StructArray.from_arrays(
                [
                    e.item_ids.take(li),
                    e.item_names.take(li),
                    pa.array(line_qty.astype(np.int32)),
                    _money(e.item_cents[line_item]),
                ],
                fields=list(ORDER_ITEM),
            ),
        )
        items_json = _join(
            '"items":[',
            pc.binary_join(
                pa.ListArray.from_arrays(
                    offsets, _join(e.item_json_head.take(li), _text(line_qty), e.item_json_tail.take(li))
                ),
                ",",
            ),
            "],",
        )
        # Customer (skewed to low numbers) and courier, as the Market's pickers.
        customer_no = 1 + (e.customers[market] * rng.random(o) ** 2).astype(np.int64)
        customer = _join("cus-", market_names, "-", pc.utf8_lpad(_text(customer_no), width=5, padding="0"))
        courier = e.courier_ids.take(
            pa.array(e.courier_first[market] + rng.integers(0, 1 << 30, size=o) % e.courier_count[market])
        )
        # Lifecycle: the generator's probabilities and delays.
        lc = self.lifecycle

        def after(start: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
            return start + np.maximum(1, np.round(rng.uniform(bounds[0], bounds[1], size=o) * 60_000)).astype(np.int64)

        fate = rng.random(o)
        p1 = lc.p_customer_cancel
        p2 = p1 + lc.p_restaurant_reject
        p3 = p2 + lc.p_no_courier
        p4 = p3 + lc.p_delivery_failed
        outcome = np.select([fate < p1, fate < p2, fate < p3, fate < p4], [0, 1, 2, 3], default=4)
        accepted = after(placed, lc.accept_minutes)
        picked = after(accepted, lc.pickup_minutes)
        terminal = np.select(
            [outcome == 0, outcome == 1, outcome == 2],
            [after(placed, (0.5, 3.0)), accepted, after(accepted, (5.0, 20.0))],
            default=after(picked, lc.delivery_minutes),
        )
        # Events: (order, stage, time, type) for every stage an order reaches.
        stage_masks = [
            (np.ones(o, dtype=bool), 0, placed, PLACED),
            (outcome >= 2, 1, accepted, ACCEPTED),
            (outcome >= 3, 2, picked, PICKED_UP),
        ]
        ev_order, ev_stage, ev_ms, ev_type = [], [], [], []
        for mask, stage, times, kind in stage_masks:
            idx = np.flatnonzero(mask)
            ev_order.append(idx)
            ev_stage.append(np.full(len(idx), stage))
            ev_ms.append(times[idx])
            ev_type.append(np.full(len(idx), EVENT_TYPE_CODES[kind]))
        ev_order.append(np.arange(o))
        ev_stage.append(np.select([outcome <= 1, outcome == 2, outcome == 3], [1, 2, 3], default=3))
        ev_ms.append(terminal)
        ev_type.append(np.where(outcome == 4, EVENT_TYPE_CODES[DELIVERED], EVENT_TYPE_CODES[CANCELLED]))
        ev_order_a, ev_stage_a = np.concatenate(ev_order), np.concatenate(ev_stage)
        ev_ms_a, ev_type_a = np.concatenate(ev_ms), np.concatenate(ev_type)
        sort = np.lexsort((ev_stage_a, ev_order_a, ev_ms_a))
        eo, es, ems, codes = ev_order_a[sort], ev_stage_a[sort], ev_ms_a[sort], ev_type_a[sort]
        etype = pa.array(ORDER_EVENT_TYPES, pa.string()).take(pa.array(codes, pa.int64()))
        n = len(eo)
        eo_arr = pa.array(eo, pa.int64())
        is_placed = es == 0
        is_delivered = codes == EVENT_TYPE_CODES[DELIVERED]
        is_cancelled = codes == EVENT_TYPE_CODES[CANCELLED]
        # The courier shows from the pickup on; an order cancelled at stage 2 (no courier) never had one.
        has_courier = (es >= 2) & ~(is_cancelled & (es == 2))
        ev_order_ids = order_ids.take(eo_arr)
        ids = _ids(ORDERS_NAMESPACE, _join(f"{self.plan.seed}/", ev_order_ids, "/", etype))
        hundredths = np.round((ems - placed[eo]) / 600).astype(np.int64)  # delivery minutes, two decimals
        delivery = np.where(is_delivered, hundredths / 100, 0.0)
        cancelled = pa.array(is_cancelled)
        reason = pc.if_else(
            cancelled, pa.array(CANCEL_REASONS).take(pa.array(np.minimum(outcome[eo], 3))), pa.nulls(n, pa.string())
        )
        cancelled_stage = pc.if_else(
            cancelled,
            pa.array([PLACED, ACCEPTED, PICKED_UP]).take(pa.array(np.clip(es - 1, 0, 2))),
            pa.nulls(n, pa.string()),
        )
        courier_ev = pc.if_else(pa.array(has_courier), courier.take(eo_arr), pa.nulls(n, pa.string()))
        currency = pa.array(e.currency).take(pa.array(market[eo]))
        market_ev = market_names.take(eo_arr)
        demand_ev = pa.array(self.wikis).take(pa.array(demand_wiki[market[eo], order_minute[eo]]))
        total_ev = total_cents[eo]
        order_json = _join(  # what every event of an order says alike, once per order
            '","order_id":"',
            order_ids,
            '","market":"',
            market_names,
            '","restaurant_id":"',
            e.rest_ids.take(pa.array(rest)),
            '","customer_id":"',
            customer,
            '","courier_id":',
        )
        raw = _join(
            f'{{"schema_version":{SCHEMA_VERSION},"event_id":"',
            ids,
            '","event_type":"',
            etype,
            '","event_time":"',
            _iso_ms(ems),
            order_json.take(eo_arr),
            pc.if_else(pa.array(has_courier), _join('"', courier.take(eo_arr), '"'), "null"),
            ",",
            items_json.take(pa.array(eo, mask=~is_placed)).fill_null(""),
            '"order_total":',
            cents_text(total_ev),
            ',"currency":"',
            currency,
            '",',
            pc.if_else(pa.array(is_delivered), _join('"delivery_minutes":', cents_text(hundredths), ","), ""),
            pc.if_else(
                pa.array(is_cancelled),
                _join(
                    '"cancel_reason":"',
                    pc.fill_null(reason, ""),
                    '","cancelled_stage":"',
                    pc.fill_null(cancelled_stage, ""),
                    '",',
                ),
                "",
            ),
            '"demand_wiki":"',
            demand_ev,
            '"}',
        )
        ingested_ms = ems + rng.integers(200, 3_000, size=n)
        table = pa.Table.from_arrays(
            [
                ids,
                _timestamps(ems),
                etype,
                ev_order_ids,
                market_ev,
                e.rest_ids.take(pa.array(rest[eo])),
                customer.take(eo_arr),
                courier_ev,
                items.take(pa.array(eo, mask=~is_placed)),
                _money(total_ev),
                currency,
                pa.array(delivery, mask=~is_delivered),
                reason,
                pa.array(np.full(n, SCHEMA_VERSION, dtype=np.int32)),
                pa.nulls(n, pa.string()),
                _timestamps(ingested_ms),
                raw,
            ],
            schema=ORDERS.schema,
        )
        return table, o


# ----- committing -------------------------------------------------------------------------------------------------
def chunks(rows: pa.Table, size: int = CHUNK_ROWS) -> list[pa.Table]:
    """``rows`` cut into about equal parts of at most ``size`` rows (one part when empty)."""
    parts = max(1, -(-rows.num_rows // size))
    step = -(-rows.num_rows // parts) if rows.num_rows else 0
    return [rows.slice(i * step, step) for i in range(parts)] if rows.num_rows else [rows]


def day_key(day: date) -> str:
    """The table property that records ``day``."""
    return DAY_PROPERTY_PREFIX + day.isoformat()


def day_record(table: Table, day: date) -> dict[str, Any] | None:
    """What the table's property says of ``day`` (``fingerprint``, ``done``, ``chunks``, ``rows``), or None."""
    value = table.properties.get(day_key(day))
    return json.loads(value) if value else None


@dataclass
class Progress:
    """Counters of a backfill run."""

    started: float = field(default_factory=time.perf_counter)
    days_done: int = 0
    days_skipped: int = 0
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "days_done": self.days_done,
            "days_skipped": self.days_skipped,
            "events": self.events,
            "rows": dict(self.rows),
            "seconds": round(time.perf_counter() - self.started, 2),
            "events_per_s": round(self.rate, 1),
        }


def days_before(today: date, n: int) -> list[date]:
    """The ``n`` whole days before ``today``, oldest first."""
    return [today - timedelta(days=d) for d in range(n, 0, -1)]


class Backfill:
    """Fills the days before today with generated history, exactly once per day (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        plan: Plan,
        *,
        lease_ttl: float = DEFAULT_TTL_SECONDS,
        chunk_rows: int = CHUNK_ROWS,
        generator: HistoryGenerator | None = None,
        out: Callable[[str], None] | None = None,
    ):
        self.catalog = catalog
        self.plan = plan
        self.lease_ttl = lease_ttl
        self.chunk_rows = chunk_rows
        self.generator = generator
        self.out = out or (lambda line: print(line, flush=True))
        self.progress = Progress()
        self.batch = 0
        self.lease: Lease | None = None

    def run(self, days: Sequence[date]) -> dict[str, Any]:
        """Takes the ``backfill`` writer lease and fills ``days``; returns the run's figures.

        Raises:
            BackfillError: a day holds a backfill of other arguments (nothing of this run is written to that day).
            LeaseHeld: another backfill is running.
            CommitError: a permanent commit failure.
        """
        from airlake.lake.tables import ensure_tables

        tables = ensure_tables(self.catalog)
        targets = {
            RECENTCHANGE.identifier: tables[RECENTCHANGE.identifier],
            ORDERS.identifier: tables[ORDERS.identifier],
        }
        fingerprint = self.plan.fingerprint()
        self.check(targets, days, fingerprint)  # before the lease: a refused run writes nothing
        self.lease = Lease(self.catalog, BACKFILL_WRITER, ttl=self.lease_ttl)
        self.lease.acquire()
        try:
            for table in targets.values():
                table.refresh()
            self.check(targets, days, fingerprint)  # what another backfill did before this one took the lease
            self.progress = Progress()
            todo = [day for day in days if not day_complete(targets, day)]
            if todo and self.generator is None:
                self.generator = HistoryGenerator(self.plan)
            generator = self.generator
            # The next day is generated in a thread while this one is written (Parquet and commits leave the GIL).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-generate") as pool:
                pending = {day: pool.submit(generator.generate, day) for day in todo[:1]}
                for number, day in enumerate(days, start=1):
                    if day in pending:
                        following = todo.index(day) + 1
                        if following < len(todo):
                            pending[todo[following]] = pool.submit(generator.generate, todo[following])
                        self.commit_day(targets, pending.pop(day).result(), fingerprint)
                    else:
                        self.progress.days_skipped += 1
                    p = self.progress
                    self.out(
                        f"backfill: {number}/{len(days)} days ({day.isoformat()}"
                        f" {'filled' if day in todo else 'already there'}) | {p.events:,} events"
                        f" | {p.rate:,.0f} events/s"
                    )
        finally:
            self.lease.release()
        summary = self.progress.summary()
        self.out(
            f"backfill done: {summary['days_done']} days filled, {summary['days_skipped']} already there,"
            f" {summary['events']:,} events in {summary['seconds']} s ({summary['events_per_s']:,.0f} events/s)"
        )
        return summary

    def check(self, tables: Mapping[str, Table], days: Sequence[date], fingerprint: Mapping[str, Any]) -> None:
        for day in days:
            for name, table in tables.items():
                record = day_record(table, day)
                if record is not None and record["fingerprint"] != dict(fingerprint):
                    raise BackfillError(
                        f"{day.isoformat()} in {name} already holds a backfill of {describe(record['fingerprint'])};"
                        f" this run asks {describe(fingerprint)}. A day is filled by one backfill only (its rows are"
                        " not mixed with other ones): rerun with the same arguments and settings, or choose other days"
                    )

    def commit_day(self, tables: Mapping[str, Table], generated: Day, fingerprint: Mapping[str, Any]) -> None:
        """Commits the chunks of a generated day that the tables lack (all of them, unless a run was cut short)."""
        day = generated.day
        for name, rows in ((RECENTCHANGE.identifier, generated.recentchange), (ORDERS.identifier, generated.orders)):
            table = tables[name]
            parts = chunks(rows, self.chunk_rows)
            record = day_record(table, day)
            done = record["done"] if record is not None else 0
            for index, part in enumerate(parts):
                if index < done:
                    continue
                self.lease.check()
                self.batch += 1
                epoch = self.lease.epoch or 0
                mark = BatchMark(BACKFILL_WRITER, self.batch, (name,), {}, {}, epoch)
                value = {
                    "fingerprint": dict(fingerprint),
                    "done": index + 1,
                    "chunks": len(parts),
                    "rows": rows.num_rows,
                }
                if not append_batch(table, part, mark, properties={day_key(day): json.dumps(value, sort_keys=True)}):
                    raise BackfillError("stopped before the commit")
                self.progress.events += part.num_rows
                self.progress.rows[name] = self.progress.rows.get(name, 0) + part.num_rows
        self.progress.days_done += 1


def day_complete(tables: Mapping[str, Table], day: date) -> bool:
    """Whether every table holds all chunks of ``day``."""
    for table in tables.values():
        record = day_record(table, day)
        if record is None or record["done"] < record["chunks"]:
            return False
    return True


# ----- the command ----------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, required=True, help="fill this many whole days (UTC) before today")
    parser.add_argument(
        "--orders-per-day",
        type=int,
        help="orders placed a day on a week's average, spread over markets and minutes as demand is "
        "(default: firehose.orders_per_edit orders per edit)",
    )
    parser.add_argument("--seed", type=int, help="seed of every draw (default: firehose.seed)")
    parser.add_argument("--json", action="store_true", help="print the run's figures as JSON at the end")


def plan_from(settings: Settings, args: argparse.Namespace) -> Plan:
    """The plan of a run: ``--seed`` and ``--orders-per-day`` over ``firehose.*`` and ``markets.wikis``."""
    wikis = settings.markets.wikis  # typed: a mapping of wiki names to market names
    return Plan(
        seed=args.seed if args.seed is not None else settings.firehose.seed,
        orders_per_day=args.orders_per_day,
        orders_per_edit=settings.firehose.orders_per_edit,
        wikis={str(k): str(v or DEFAULT_MARKET) for k, v in wikis.items()},
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    from airlake.catalog import load_catalog

    def fail(message: str) -> int:
        print(f"airlake backfill: {message}", file=sys.stderr, flush=True)
        return 1

    if args.days < 1:
        return fail(f"--days must be at least 1, not {args.days}")
    if args.orders_per_day is not None and args.orders_per_day < 0:
        return fail(f"--orders-per-day must not be negative, not {args.orders_per_day}")
    try:
        plan = plan_from(settings, args)
        days = days_before(datetime.now(UTC).date(), args.days)
        backfill = Backfill(load_catalog(settings), plan, lease_ttl=settings.pipeline.lease_ttl_seconds)
        summary = backfill.run(days)
    except (BackfillError, CommitError, LeaseError) as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
