"""Photos at their source: menu-item photos and couriers' proof-of-delivery photos, generated with Pillow.

A photo is a pure function of the firehose's seed and its id, and its id says what it depicts:

- ``dish.<cuisine>.<dish-slug>.<variant>``: a dish of a cuisine (``dish.pizza.margherita.2``). Restaurants use
  stock photos: each menu item shows one of :data:`DISH_VARIANTS` photos of its dish, chosen from the seed and
  the restaurant, so one photo serves the menu items of several restaurants (and markets).
- ``pod.<order_id>.<YYYYmmddTHHMMSSZ>``: the doorstep of an order at its delivery time, the order number on the
  bag, the time in the EXIF ``DateTime`` of its JPEG and WebP files.

Formats are JPEG, PNG and WebP (weighted from the id), 20 KB to 2 MB. :class:`PhotoService` renders a photo when it
is first asked for and keeps a bounded cache, so generating photos never slows the order stream;
:class:`PhotoFaults` turns a configurable share of photos (chosen from the id, so always the same ones) into the
faults a CDN can serve: missing (404), truncated, not an image, a decompression bomb, oversized.

Imports :mod:`sources.orders.entities` lazily (the menu and the cuisines' photo palettes, data in ``menu.yaml``; the
order generator imports this module for
:func:`proof_photo_id`); Pillow and numpy.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PHOTOS_PATH = "/v1/photos/"
"""Where the order firehose serves photos: ``GET /v1/photos/{id}``."""
RESTAURANTS_PATH = "/v1/restaurants"
"""The restaurant catalog: ``GET /v1/restaurants?market=M`` and ``GET /v1/restaurants/{id}/menu``."""

MENU = "menu"
PROOF_OF_DELIVERY = "proof_of_delivery"
KINDS = (MENU, PROOF_OF_DELIVERY)

DISH_PREFIX = "dish"
PROOF_PREFIX = "pod"
DISH_VARIANTS = 3
"""Stock photos per dish; a menu item shows one of them."""

FORMATS = ("JPEG", "PNG", "WEBP")
FORMAT_WEIGHTS = (70, 15, 15)
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIN_BYTES = 20_000
MAX_BYTES = 2_000_000
"""The size range of a good photo."""
OVERSIZED_BYTES = 6_000_000
"""The size of an oversized photo (a valid JPEG padded with comment segments)."""
BOMB_SIDE = 30_000
"""An edge of the decompression bomb: a 1-bit PNG of 30,000 x 30,000 pixels (900 megapixels) in about 110 KB."""

FAULT_KINDS = ("missing", "truncated", "not_image", "bomb", "oversized")
EXIF_DATETIME = 0x0132
_SLUG = re.compile(r"[^a-z0-9]+")
_STAMP = "%Y%m%dT%H%M%SZ"


def slug(text: str) -> str:
    """``Prosciutto e Rucola`` -> ``prosciutto-e-rucola``."""
    return _SLUG.sub("-", text.lower()).strip("-")


def _digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "big")


# ----------------------------------------------------------------------------------------------------
# Ids
# ----------------------------------------------------------------------------------------------------


def dish_photo_id(cuisine: str, dish: str, variant: int) -> str:
    """The id of stock photo ``variant`` of a dish of a cuisine."""
    return f"{DISH_PREFIX}.{cuisine}.{slug(dish)}.{variant}"


def menu_photo_id(seed: int, restaurant_id: str, cuisine: str, dish: str) -> str:
    """The photo of a menu item: one of the dish's stock photos, chosen from the seed and the restaurant."""
    return dish_photo_id(cuisine, dish, _digest(seed, "menu-photo", restaurant_id, dish) % DISH_VARIANTS)


def proof_photo_id(order_id: str, delivered_ms: int) -> str:
    """The id of an order's proof-of-delivery photo, taken at its delivery time (epoch milliseconds)."""
    return f"{PROOF_PREFIX}.{order_id}.{time.strftime(_STAMP, time.gmtime(delivered_ms // 1000))}"


@dataclass(frozen=True)
class PhotoSubject:
    """What a photo depicts, parsed from its id."""

    photo_id: str
    kind: str
    cuisine: str = ""
    dish: str = ""
    variant: int = 0
    order_id: str = ""
    taken_at: str = ""
    """``YYYY:mm:dd HH:MM:SS`` (EXIF form), proof photos only."""


def parse_photo_id(photo_id: str) -> PhotoSubject:
    """What a photo id depicts.

    Raises:
        ValueError: the id is not one this source makes (the server answers 404).
    """
    from airlake.sources.orders.entities import CUISINES

    parts = photo_id.split(".")
    if len(parts) == 4 and parts[0] == DISH_PREFIX and parts[3].isdigit():
        _, cuisine, dish_slug, variant = parts
        dishes = CUISINES.get(cuisine, ((), ()))[1]
        names = [name for name, _, _ in dishes if slug(name) == dish_slug]
        if names and int(variant) < DISH_VARIANTS:
            return PhotoSubject(photo_id, MENU, cuisine=cuisine, dish=names[0], variant=int(variant))
    elif len(parts) == 3 and parts[0] == PROOF_PREFIX and parts[1].startswith("ord-"):
        try:
            taken = time.strptime(parts[2], _STAMP)
        except ValueError:
            pass
        else:
            return PhotoSubject(
                photo_id, PROOF_OF_DELIVERY, order_id=parts[1], taken_at=time.strftime("%Y:%m:%d %H:%M:%S", taken)
            )
    raise ValueError(f"no such photo: {photo_id!r}")


def photo_format(seed: int, photo_id: str) -> str:
    """The format of a photo (JPEG, PNG or WEBP), weighted by :data:`FORMAT_WEIGHTS`."""
    pick = _digest(seed, "format", photo_id) % sum(FORMAT_WEIGHTS)
    for name, weight in zip(FORMATS, FORMAT_WEIGHTS, strict=True):
        if pick < weight:
            return name
        pick -= weight
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _grain(rng: np.random.Generator, width: int, height: int, amplitude: float) -> np.ndarray:
    """Photo-like texture: smooth blotches plus fine sensor grain, as an int16 array of shape (h, w, 3)."""
    from PIL import Image

    coarse = rng.integers(0, 256, size=(max(2, height // 48), max(2, width // 48), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    fine = rng.integers(-int(amplitude), int(amplitude) + 1, size=(height, width, 1), dtype=np.int16)
    return ((smooth - 128) * 0.12 + fine).astype(np.int16)


def _finish(image: Any, rng: np.random.Generator, amplitude: float) -> Any:
    from PIL import Image

    pixels = np.asarray(image, dtype=np.int16) + _grain(rng, image.width, image.height, amplitude)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def render_dish(seed: int, subject: PhotoSubject, size: tuple[int, int], grain: float) -> Any:
    """A dish-like composition: a table, a plate, the food in the cuisine's colours, garnish (a PIL image)."""
    from PIL import Image, ImageDraw

    from airlake.sources.orders.entities import PHOTO_FALLBACK_PALETTE, PHOTO_PALETTES

    rng = np.random.default_rng(_digest(seed, subject.photo_id))
    table, rim, *food = PHOTO_PALETTES.get(subject.cuisine, PHOTO_FALLBACK_PALETTE)
    width, height = size
    image = Image.new("RGB", size, table)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, max(8, height // 14)):  # table planks
        shade = tuple(max(0, c - int(rng.integers(0, 25))) for c in table)
        draw.rectangle((0, y, width, y + max(3, height // 60)), fill=shade)
    cx, cy = width / 2 + rng.normal(0, width / 30), height / 2 + rng.normal(0, height / 30)
    radius = min(width, height) * float(rng.uniform(0.36, 0.44))
    draw.ellipse((cx - radius, cy - radius * 0.8, cx + radius, cy + radius * 0.8), fill=rim)
    inner = radius * 0.78
    draw.ellipse((cx - inner, cy - inner * 0.8, cx + inner, cy + inner * 0.8), fill=tuple(c - 12 for c in rim))
    for _ in range(int(rng.integers(6, 14))):  # the food
        colour = food[int(rng.integers(0, len(food)))]
        r = inner * float(rng.uniform(0.15, 0.45))
        x, y = cx + rng.normal(0, inner / 4), cy + rng.normal(0, inner / 5)
        draw.ellipse((x - r, y - r * 0.8, x + r, y + r * 0.8), fill=colour)
    for _ in range(int(rng.integers(20, 60))):  # garnish
        colour = food[-1]
        r = inner * float(rng.uniform(0.01, 0.04))
        x, y = cx + rng.normal(0, inner / 3), cy + rng.normal(0, inner / 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return _finish(image, rng, grain)


def render_doorstep(seed: int, subject: PhotoSubject, size: tuple[int, int], grain: float) -> Any:
    """A doorstep: wall, door, house number, step, the delivery bag with the order number on its label."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(_digest(seed, subject.photo_id))
    width, height = size
    wall = tuple(int(v) for v in rng.integers(90, 220, size=3))
    image = Image.new("RGB", size, wall)
    draw = ImageDraw.Draw(image)
    door = tuple(int(v) for v in rng.integers(20, 160, size=3))
    dx = width * float(rng.uniform(0.25, 0.45))
    draw.rectangle((dx, height * 0.08, dx + width * 0.3, height * 0.78), fill=door)
    draw.ellipse((dx + width * 0.25, height * 0.45, dx + width * 0.27, height * 0.48), fill=(212, 175, 55))
    draw.rectangle((0, height * 0.78, width, height), fill=(128, 128, 124))  # the step
    bx, by = width * float(rng.uniform(0.05, 0.55)), height * 0.6
    bag_w, bag_h = width * 0.32, height * 0.3
    draw.rectangle((bx, by, bx + bag_w, by + bag_h), fill=(168, 120, 72))
    draw.rectangle((bx + bag_w * 0.08, by + bag_h * 0.25, bx + bag_w * 0.92, by + bag_h * 0.7), fill=(250, 250, 250))
    font = ImageFont.load_default(size=max(10, int(bag_h * 0.09)))
    number = subject.order_id.removeprefix("ord-")
    draw.text((bx + bag_w * 0.1, by + bag_h * 0.3), number[:24], fill=(0, 0, 0), font=font)
    draw.text((bx + bag_w * 0.1, by + bag_h * 0.45), number[24:48], fill=(0, 0, 0), font=font)
    house = ImageFont.load_default(size=max(12, int(height * 0.06)))
    draw.text(
        (dx + width * 0.1, height * 0.12), str(1 + _digest(subject.order_id) % 199), fill=(240, 240, 240), font=house
    )
    return _finish(image, rng, grain)


_SIZES = {
    MENU: ((800, 600), (1024, 768), (1200, 900), (1600, 1200)),
    PROOF_OF_DELIVERY: ((640, 480), (960, 720), (1280, 960)),
}


_GRAIN = {"JPEG": 6.0, "WEBP": 6.0, "PNG": 2.0}
"""Grain amplitude per format: enough texture for photo-like sizes, little enough to stay under 2 MB."""


def _encode(image: Any, fmt: str, subject: PhotoSubject) -> bytes:
    out = io.BytesIO()
    options: dict[str, Any] = {}
    if fmt == "JPEG":
        options = {"quality": 88}
    elif fmt == "WEBP":
        options = {"quality": 85, "method": 0}
    elif fmt == "PNG":
        options = {"compress_level": 3}
    if subject.taken_at and fmt in ("JPEG", "WEBP"):
        exif = image.getexif()
        exif[EXIF_DATETIME] = subject.taken_at
        options["exif"] = exif.tobytes()
    image.save(out, fmt, **options)
    return out.getvalue()


def render_photo(seed: int, photo_id: str) -> tuple[str, bytes]:
    """The format and the bytes of a photo, between :data:`MIN_BYTES` and :data:`MAX_BYTES`.

    Raises:
        ValueError: not a photo id of this source.
    """
    subject = parse_photo_id(photo_id)
    fmt = photo_format(seed, photo_id)
    sizes = _SIZES[subject.kind][:2] if fmt == "PNG" else _SIZES[subject.kind]  # PNG is lossless: smaller
    size = sizes[_digest(seed, "size", photo_id) % len(sizes)]
    render: Callable[..., Any] = render_dish if subject.kind == MENU else render_doorstep
    grain = _GRAIN[fmt]
    for _ in range(8):
        data = _encode(render(seed, subject, size, grain), fmt, subject)
        if len(data) > MAX_BYTES:
            size = (size[0] * 3 // 4, size[1] * 3 // 4)
        elif len(data) < MIN_BYTES:
            grain *= 2
        else:
            return fmt, data
    raise AssertionError(f"photo {photo_id} does not fit {MIN_BYTES}..{MAX_BYTES} bytes ({len(data)})")


# ----------------------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoFaults:
    """Which photos are served broken: about one in ``<kind>_every`` (0: none), chosen from the seed and the id,
    so a photo always has the same fault. When several kinds pick a photo the first in :data:`FAULT_KINDS` wins.

    Attributes:
        missing_every: answered 404.
        truncated_every: the photo's bytes cut at 40-80 % of their length.
        not_image_every: a text page served as the photo's content type.
        bomb_every: a 1-bit PNG of :data:`BOMB_SIDE` squared pixels (a decompression bomb), about 110 KB.
        oversized_every: a valid JPEG of :data:`OVERSIZED_BYTES` (padded with comment segments).
    """

    missing_every: int = 0
    truncated_every: int = 0
    not_image_every: int = 0
    bomb_every: int = 0
    oversized_every: int = 0

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            if getattr(self, f"{kind}_every") < 0:
                raise ValueError(f"{kind}_every must not be negative")

    def fault(self, seed: int, photo_id: str) -> str | None:
        """The fault of a photo (one of :data:`FAULT_KINDS`) or ``None``."""
        for kind in FAULT_KINDS:
            every = getattr(self, f"{kind}_every")
            if every and _digest(seed, "fault", kind, photo_id) % every == 0:
                return kind
        return None

    def as_dict(self) -> dict[str, int]:
        return {kind: getattr(self, f"{kind}_every") for kind in FAULT_KINDS}


def truncate(data: bytes, seed: int, photo_id: str) -> bytes:
    """The first 40-80 % of ``data``."""
    share = 0.4 + (_digest(seed, "truncate", photo_id) % 400) / 1000
    return data[: int(len(data) * share)]


def not_an_image(photo_id: str) -> bytes:
    """What a misconfigured CDN serves instead of a photo: a text page."""
    return (
        f"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
        f"<p>upstream error while fetching {photo_id}</p></body></html>\n"
    ).encode()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=2)
def decompression_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit greyscale PNG of ``side`` x ``side`` black pixels: small on the wire, huge decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    chunks.append(compressor.compress(row * (side % 1000)))
    chunks.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(chunks))
        + _png_chunk(b"IEND", b"")
    )


def oversized_jpeg(seed: int, photo_id: str, total: int = OVERSIZED_BYTES) -> bytes:
    """A valid JPEG of the photo, padded with COM segments of noise to ``total`` bytes."""
    subject = parse_photo_id(photo_id)
    render = render_dish if subject.kind == MENU else render_doorstep
    jpeg = _encode(render(seed, subject, _SIZES[subject.kind][0], 6.0), "JPEG", subject)
    rng = np.random.default_rng(_digest(seed, "oversized", photo_id))
    padding: list[bytes] = []
    missing = total - len(jpeg)
    while missing > 4:
        body = min(65_533, missing - 4)
        padding.append(b"\xff\xfe" + struct.pack(">H", body + 2) + rng.integers(0, 256, body, dtype=np.uint8).tobytes())
        missing -= body + 4
    return jpeg[:2] + b"".join(padding) + jpeg[2:]


# ----------------------------------------------------------------------------------------------------
# Serving
# ----------------------------------------------------------------------------------------------------


@dataclass
class Response:
    """An HTTP answer: status, headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes


def _json(status: int, body: Any) -> Response:
    payload = json.dumps(body, indent=1, ensure_ascii=False).encode() + b"\n"
    return Response(status, {"Content-Type": "application/json"}, payload)


@dataclass
class PhotoStats:
    """Counters of a :class:`PhotoService`."""

    requests: int = 0
    rendered: int = 0
    cache_hits: int = 0
    not_modified: int = 0
    not_found: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))


class PhotoService:
    """Serves photos like a CDN (``GET /v1/photos/{id}``): rendered on first request, kept in a bounded LRU cache.

    Args:
        seed: the seed of every photo.
        faults: which photos are served broken.
        cache_bytes: the most bytes kept rendered (least recently used first out).
    """

    def __init__(self, seed: int, faults: PhotoFaults | None = None, *, cache_bytes: int = 64 << 20) -> None:
        self.seed = seed
        self.faults = faults or PhotoFaults()
        self.cache_bytes = cache_bytes
        self.stats = PhotoStats()
        self._cache: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()

    def served(self, photo_id: str) -> tuple[str, bytes] | None:
        """The content type and bytes served for a photo (``None`` for a 404), faults included.

        Raises:
            ValueError: not a photo id of this source.
        """
        fault = self.faults.fault(self.seed, photo_id)
        parse_photo_id(photo_id)
        if fault == "missing":
            return None
        with self._lock:
            hit = self._cache.get(photo_id)
            if hit is not None:
                self._cache.move_to_end(photo_id)
                self.stats.cache_hits += 1
                return hit
        with self._render_lock:  # one render at a time: the stream's thread keeps its share of the CPU
            content_type, body = self._render(photo_id, fault)
        with self._lock:
            self.stats.rendered += 1
            if photo_id not in self._cache and len(body) <= self.cache_bytes:
                self._cache[photo_id] = (content_type, body)
                self._cached += len(body)
                while self._cached > self.cache_bytes:
                    _, (_, old) = self._cache.popitem(last=False)
                    self._cached -= len(old)
        return content_type, body

    def _render(self, photo_id: str, fault: str | None) -> tuple[str, bytes]:
        if fault == "bomb":
            return CONTENT_TYPES["PNG"], decompression_bomb()
        if fault == "oversized":
            return CONTENT_TYPES["JPEG"], oversized_jpeg(self.seed, photo_id)
        fmt, data = render_photo(self.seed, photo_id)
        if fault == "truncated":
            data = truncate(data, self.seed, photo_id)
        elif fault == "not_image":
            data = not_an_image(photo_id)
        return CONTENT_TYPES[fmt], data

    def handle(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        """Answers ``GET /v1/photos/{id}``: 200 with ``Content-Type``, ``Content-Length`` and ``ETag`` (the
        SHA-256 of the body), 304 for a matching ``If-None-Match``, 404 for an unknown or missing photo."""
        photo_id = path[len(PHOTOS_PATH) :]
        with self._lock:
            self.stats.requests += 1
        try:
            found = self.served(photo_id)
        except ValueError as exc:
            with self._lock:
                self.stats.not_found += 1
            return _json(404, {"error": str(exc)})
        fault = self.faults.fault(self.seed, photo_id)
        if fault is not None:
            with self._lock:
                self.stats.faults[fault] += 1
        if found is None:
            with self._lock:
                self.stats.not_found += 1
            return _json(404, {"error": f"no such photo: {photo_id!r}"})
        content_type, body = found
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        common = {"ETag": etag, "Cache-Control": "public, max-age=31536000, immutable"}
        if headers.get("If-None-Match") == etag:
            with self._lock:
                self.stats.not_modified += 1
            return Response(304, common, b"")
        return Response(200, {"Content-Type": content_type, **common}, body)

    def stats_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.stats.requests,
                "rendered": self.stats.rendered,
                "cache_hits": self.stats.cache_hits,
                "not_modified": self.stats.not_modified,
                "not_found": self.stats.not_found,
                "faults": dict(self.stats.faults),
                "fault_every": self.faults.as_dict(),
                "cached_photos": len(self._cache),
                "cached_bytes": self._cached,
            }


class RestaurantCatalog:
    """``GET /v1/restaurants[?market=M]`` (restaurants with their menus and photo URLs) and
    ``GET /v1/restaurants/{id}/menu``.

    Args:
        seed: the seed of the photos (the generator's).
        market: builds a market's entities (``OrderGenerator.market``).
        markets: the markets listed when no ``market`` is asked for.
        photo_base_url: the base of the photo URLs (``http://127.0.0.1:8091``).
    """

    def __init__(self, seed: int, market: Callable[[str], Any], markets: list[str], photo_base_url: str) -> None:
        self.seed = seed
        self.market = market
        self.markets = sorted(set(markets))
        self.photo_base_url = photo_base_url.rstrip("/")
        self._lock = threading.Lock()

    def photo_url(self, photo_id: str) -> str:
        return f"{self.photo_base_url}{PHOTOS_PATH}{photo_id}"

    def restaurant(self, restaurant: Any, market: str) -> dict[str, Any]:
        """A restaurant as the catalog lists it, each menu item with its ``photo_id`` and ``photo_url``."""
        menu = []
        for item in restaurant.menu:
            photo = menu_photo_id(self.seed, restaurant.restaurant_id, restaurant.cuisine, item.name)
            menu.append(
                {
                    "menu_item_id": item.item_id,
                    "name": item.name,
                    "course": item.course,
                    "price_cents": item.price_cents,
                    "photo_id": photo,
                    "photo_url": self.photo_url(photo),
                }
            )
        return {
            "restaurant_id": restaurant.restaurant_id,
            "market": market,
            "name": restaurant.name,
            "cuisine": restaurant.cuisine,
            "menu": menu,
        }

    def _market(self, name: str) -> Any:
        with self._lock:  # entities are built once, by one thread
            return self.market(name)

    def handle(self, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        rest = path[len(RESTAURANTS_PATH) :].strip("/")
        if not rest:
            wanted = query.get("market") or self.markets
            unknown = [m for m in wanted if m not in self.markets]
            if unknown:
                return _json(404, {"error": f"no market {unknown[0]!r}", "markets": self.markets})
            listed = [self.restaurant(r, m) for m in wanted for r in self._market(m).restaurants]
            return _json(200, {"restaurants": listed})
        match = re.fullmatch(r"rst-(.+)-(\d{4})/menu", rest)
        if match and match.group(1) in self.markets:
            for restaurant in self._market(match.group(1)).restaurants:
                if restaurant.restaurant_id == rest.removesuffix("/menu"):
                    return _json(200, self.restaurant(restaurant, match.group(1)))
        return _json(404, {"error": f"no such restaurant or path: {path}"})
