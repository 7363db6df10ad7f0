"""Photos at their source (sources/photos.py): ids, determinism, formats and sizes, faults, and the firehose's
photo and restaurant endpoints over real HTTP."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.error
import urllib.request
from collections import Counter

import pytest
from PIL import Image

from airlake.sources import photos
from airlake.sources.orders import DELIVERED, OrderGenerator, read_demand_file
from airlake.sources.orders.entities import CUISINES
from airlake.sources.photos import (
    CONTENT_TYPES,
    FAULT_KINDS,
    MAX_BYTES,
    MENU,
    MIN_BYTES,
    OVERSIZED_BYTES,
    PHOTOS_PATH,
    PROOF_OF_DELIVERY,
    RESTAURANTS_PATH,
    PhotoFaults,
    PhotoService,
    RestaurantCatalog,
    parse_photo_id,
    photo_format,
    proof_photo_id,
    render_photo,
)
from airlake.sources.sse_server import SseServer
from tests.conftest import RECORDING_2018

SEED = 42


def dish_ids() -> list[str]:
    return [
        photos.dish_photo_id(cuisine, name, variant)
        for cuisine, (_, dishes) in CUISINES.items()
        for name, _, _ in dishes
        for variant in range(photos.DISH_VARIANTS)
    ]


def proof_ids(n: int) -> list[str]:
    return [proof_photo_id(f"ord-london-201803071616-{i:04d}", 1_520_439_377_000 + i * 7_000) for i in range(n)]


def one_of_each_format() -> list[str]:
    """A menu and a proof photo id of each format."""
    wanted: dict[tuple[str, str], str] = {}
    for photo_id in dish_ids() + proof_ids(200):
        key = (parse_photo_id(photo_id).kind, photo_format(SEED, photo_id))
        wanted.setdefault(key, photo_id)
    assert len(wanted) == 6, sorted(wanted)
    return sorted(wanted.values())


def test_ids_say_what_they_depict() -> None:
    subject = parse_photo_id("dish.pizza.prosciutto-e-rucola.2")
    assert (subject.kind, subject.cuisine, subject.dish, subject.variant) == (MENU, "pizza", "Prosciutto e Rucola", 2)
    proof = proof_photo_id("ord-london-201803071616-0001-3f9c", 1_520_439_377_123)
    assert proof == "pod.ord-london-201803071616-0001-3f9c.20180307T161617Z"
    subject = parse_photo_id(proof)
    assert (subject.kind, subject.order_id, subject.taken_at) == (
        PROOF_OF_DELIVERY,
        "ord-london-201803071616-0001-3f9c",
        "2018:03:07 16:16:17",
    )
    for bad in ("dish.pizza.margherita.3", "dish.pizza.caviar.0", "dish.nope.margherita.0", "pod.x.2018", "x", ""):
        with pytest.raises(ValueError, match="no such photo"):
            parse_photo_id(bad)


def test_menu_items_share_stock_photos_chosen_from_the_seed() -> None:
    ids = {photos.menu_photo_id(SEED, f"rst-london-{r:04d}", "pizza", "Margherita") for r in range(1, 41)}
    assert ids == {photos.dish_photo_id("pizza", "Margherita", v) for v in range(photos.DISH_VARIANTS)}
    other = [photos.menu_photo_id(7, f"rst-london-{r:04d}", "pizza", "Margherita") for r in range(1, 41)]
    assert other != [photos.menu_photo_id(SEED, f"rst-london-{r:04d}", "pizza", "Margherita") for r in range(1, 41)]


def test_formats_follow_their_weights() -> None:
    counts = Counter(photo_format(SEED, photo_id) for photo_id in dish_ids() + proof_ids(1500))
    total = sum(counts.values())
    for fmt, weight in zip(photos.FORMATS, photos.FORMAT_WEIGHTS, strict=True):
        share = weight / sum(photos.FORMAT_WEIGHTS)
        assert abs(counts[fmt] / total - share) < 0.04, counts


def test_photos_are_deterministic_valid_and_of_realistic_size() -> None:
    for photo_id in one_of_each_format():
        fmt, data = render_photo(SEED, photo_id)
        assert fmt == photo_format(SEED, photo_id)
        assert MIN_BYTES <= len(data) <= MAX_BYTES, (photo_id, len(data))
        assert render_photo(SEED, photo_id) == (fmt, data)
        assert render_photo(SEED + 1, photo_id)[1] != data
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == fmt
            image.load()
            assert image.width * image.height >= 640 * 480
            taken = image.getexif().get(photos.EXIF_DATETIME)
        subject = parse_photo_id(photo_id)
        if subject.kind == PROOF_OF_DELIVERY and fmt != "PNG":
            assert taken == subject.taken_at
        else:
            assert taken is None


def test_faults_pick_about_one_photo_in_n_always_the_same() -> None:
    faults = PhotoFaults(missing_every=10, truncated_every=20, not_image_every=25, bomb_every=50, oversized_every=40)
    ids = dish_ids() + proof_ids(3000)
    picked = Counter(faults.fault(SEED, photo_id) for photo_id in ids)
    assert picked[None] > 0.7 * len(ids)
    # The kinds are checked in order, so a later kind keeps its share of what the earlier ones left.
    left = 1.0
    for kind in FAULT_KINDS:
        every = getattr(faults, f"{kind}_every")
        assert picked[kind] == pytest.approx(len(ids) * left / every, rel=0.3), (kind, picked)
        left *= 1 - 1 / every
    assert [faults.fault(SEED, i) for i in ids[:500]] == [faults.fault(SEED, i) for i in ids[:500]]
    assert PhotoFaults().fault(SEED, ids[0]) is None
    with pytest.raises(ValueError, match="bomb_every"):
        PhotoFaults(bomb_every=-1)


def test_delivered_events_carry_their_proof_photo() -> None:
    demand = list(read_demand_file(RECORDING_2018))[:3000]
    events = list(OrderGenerator(seed=SEED, markets={}).generate(demand))
    delivered = [e for e in events if e["event_type"] == DELIVERED]
    assert delivered
    for event in delivered:
        assert event["proof_photo_id"] == proof_photo_id(event["order_id"], photos_time_ms(event["event_time"]))
        assert event["proof_photo_url"] == PHOTOS_PATH + event["proof_photo_id"]
    assert not any("proof_photo_id" in e for e in events if e["event_type"] != DELIVERED)
    cdn = list(OrderGenerator(seed=SEED, markets={}, photo_base_url="https://cdn.example/").generate(demand))
    first = next(e for e in cdn if e["event_type"] == DELIVERED)
    assert first["proof_photo_url"] == f"https://cdn.example{PHOTOS_PATH}{first['proof_photo_id']}"


def photos_time_ms(event_time: str) -> int:
    from airlake.sources.orders import parse_event_time_ms

    return parse_event_time_ms(event_time)


@pytest.fixture
def server():
    generator = OrderGenerator(seed=SEED, markets={"enwiki": "new-york"})
    faults = PhotoFaults(missing_every=7, truncated_every=7, not_image_every=7, bomb_every=7, oversized_every=7)
    service = PhotoService(SEED, faults, cache_bytes=3_000_000)
    with SseServer("127.0.0.1", 0) as srv:
        srv.add_route(PHOTOS_PATH, service.handle, service.stats_dict)
        catalog = RestaurantCatalog(SEED, generator.market, ["new-york", "springfield"], srv.url())
        srv.add_route(RESTAURANTS_PATH, catalog.handle)
        yield srv, service


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.integration
def test_the_firehose_serves_photos_like_a_cdn(server) -> None:
    srv, service = server
    seen: Counter[str | None] = Counter()
    for photo_id in dish_ids()[::9]:
        fault = service.faults.fault(SEED, photo_id)
        if seen[fault] >= 2:
            continue
        seen[fault] += 1
        status, headers, body = get(srv.url(PHOTOS_PATH + photo_id))
        if fault == "missing":
            assert status == 404
            continue
        assert status == 200
        assert int(headers["Content-Length"]) == len(body)
        assert headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        fmt, good = render_photo(SEED, photo_id)
        if fault is None:
            assert body == good
            assert headers["Content-Type"] == CONTENT_TYPES[fmt]
            again = get(srv.url(PHOTOS_PATH + photo_id), {"If-None-Match": headers["ETag"]})
            assert again[0] == 304
        elif fault == "truncated":
            assert good.startswith(body) and 0.4 * len(good) <= len(body) < 0.8 * len(good)
        elif fault == "not_image":
            assert body.startswith(b"<html>") and headers["Content-Type"] == CONTENT_TYPES[fmt]
        elif fault == "bomb":
            assert body.startswith(b"\x89PNG") and len(body) < 200_000
        elif fault == "oversized":
            assert len(body) == OVERSIZED_BYTES and headers["Content-Type"] == "image/jpeg"
    assert set(seen) == {None, *FAULT_KINDS}, seen
    assert get(srv.url(PHOTOS_PATH + "dish.pizza.caviar.0"))[0] == 404
    stats = json.loads(get(srv.url("/stats"))[2])[PHOTOS_PATH]
    assert stats["cached_bytes"] <= 3_000_000
    assert stats["faults"]["missing"] == seen["missing"]


@pytest.mark.integration
def test_the_restaurant_catalog_lists_menus_with_photo_urls(server) -> None:
    srv, _ = server
    status, _, body = get(srv.url(RESTAURANTS_PATH + "?market=new-york"))
    assert status == 200
    restaurants = json.loads(body)["restaurants"]
    assert len(restaurants) == 40
    item = restaurants[0]["menu"][0]
    assert item["photo_url"] == srv.url(PHOTOS_PATH + item["photo_id"])
    assert parse_photo_id(item["photo_id"]).dish == item["name"]
    one = json.loads(get(srv.url(f"{RESTAURANTS_PATH}/{restaurants[3]['restaurant_id']}/menu"))[2])
    assert one == restaurants[3]
    assert get(srv.url(RESTAURANTS_PATH + "?market=atlantis"))[0] == 404
    assert get(srv.url(RESTAURANTS_PATH + "/rst-new-york-9999/menu"))[0] == 404


def test_raw_orders_keep_the_proof_photo_in_raw_json() -> None:
    from datetime import UTC, datetime

    from airlake.lake.schemas import ORDERS
    from airlake.sources.normalize import order_row

    demand = list(read_demand_file(RECORDING_2018))[:3000]
    event = next(e for e in OrderGenerator(seed=SEED, markets={}).generate(demand) if e["event_type"] == DELIVERED)
    data = json.dumps(event)
    row = order_row(json.loads(data), raw=data, sse_id=None, ingested_at=datetime.now(UTC))
    assert set(row) == set(ORDERS.schema.names)  # no new column: existing lakes need no schema change
    assert json.loads(row["raw_json"])["proof_photo_id"] == event["proof_photo_id"]
