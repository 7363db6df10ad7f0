"""Tests of the order generator and the order event log (the package sources/orders/)."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import queue
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from airlake.settings import load_settings
from airlake.sources import orders
from airlake.sources.orders import (
    CANCELLED,
    DELIVERED,
    EVENT_TYPES,
    PICKED_UP,
    PLACED,
    OffsetOutOfRetention,
    OrderGenerator,
    OrderLog,
    build_market,
    format_event_time,
    generator_from_settings,
    market_for_wiki,
    order_count,
    parse_event_time_ms,
    read_demand_file,
)
from tests.conftest import MODERN_SAMPLES, RECORDING_2018, REPO

WIKIDATA_FILE = RECORDING_2018
MODERN_FILE = MODERN_SAMPLES
MARKETS = {
    "default": "springfield",
    "wikis": {"enwiki": "new-york", "dewiki": "berlin", "wikidatawiki": "london", "commonswiki": "london"},
}
# Small entity counts keep the tests fast; the defaults are exercised by the file-based tests.
SMALL = {"restaurants": 8, "items_per_restaurant": 6, "couriers": 10, "customers": 200}
LIFECYCLE_ORDER = {"placed": 0, "accepted": 1, "picked_up": 2, "delivered": 3}


def demand_event(wiki: str, epoch_ms: int, *, modern: bool = True) -> dict[str, Any]:
    """A minimal recentchange event: the generator reads only ``wiki`` and ``meta.dt``."""
    seconds, millis = divmod(epoch_ms, 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    dt = f"{stamp}.{millis:03d}Z" if modern else f"{stamp}+00:00"
    return {"wiki": wiki, "type": "edit", "meta": {"dt": dt, "domain": f"{wiki}.example"}}


def synthetic_demand(per_minute: dict[str, int], minutes: int, *, start_ms: int = 1_780_000_020_000, seed: int = 7):
    """Demand events for ``minutes`` minutes, ``per_minute[wiki]`` edits per minute each, in time order."""
    rng = random.Random(seed)
    events: list[tuple[int, str]] = []
    for minute in range(minutes):
        for wiki, count in per_minute.items():
            events += [(start_ms + minute * 60_000 + rng.randrange(60_000), wiki) for _ in range(count)]
    events.sort()
    return [demand_event(wiki, at) for at, wiki in events]


def digest(events: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def settings():
    return load_settings(config_file=None, environ={}, cwd="/nonexistent-airlake-test-dir")


@pytest.fixture(scope="module")
def wikidata_events(settings) -> list[dict[str, Any]]:
    return list(generator_from_settings(settings, seed=42).generate(read_demand_file(WIKIDATA_FILE)))


def epoch_ms(event: dict[str, Any]) -> int:
    return parse_event_time_ms(event["event_time"])


def check_lifecycles(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Asserts the lifecycle rules for every order; returns the events grouped by order."""
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_order[event["order_id"]].append(event)
    for order_id, chain in by_order.items():
        types = [e["event_type"] for e in chain]
        assert types[0] == PLACED, order_id
        assert types.count(PLACED) == 1, order_id
        terminal = [i for i, t in enumerate(types) if t in (DELIVERED, CANCELLED)]
        assert terminal == [len(types) - 1], f"{order_id}: no single terminal event at the end: {types}"
        progress = [LIFECYCLE_ORDER[t] for t in types if t != CANCELLED]
        assert progress == list(range(len(progress))), f"{order_id}: stages out of order: {types}"
        times = [epoch_ms(e) for e in chain]
        assert times == sorted(times), order_id
        for event in chain:
            assert set(EVENT_TYPES) >= {event["event_type"]}
            for key in ("market", "restaurant_id", "customer_id", "currency", "order_total"):
                assert event[key] == chain[0][key], f"{order_id}: {key} changed"
            assert ("items" in event) == (event["event_type"] == PLACED)
            assert ("delivery_minutes" in event) == (event["event_type"] == DELIVERED)
            assert ("cancel_reason" in event) == (event["event_type"] == CANCELLED)
            assert event["schema_version"] == 1
        placed = chain[0]
        reached_pickup = PICKED_UP in types
        for event in chain:
            expect_courier = reached_pickup and event["event_type"] in (PICKED_UP, DELIVERED, CANCELLED)
            assert (event["courier_id"] is not None) == expect_courier, f"{order_id}: courier on {types}"
        assert len({e["courier_id"] for e in chain if e["courier_id"]}) <= 1
        total_cents = sum(round(i["unit_price"] * 100) * i["quantity"] for i in placed["items"])
        assert round(placed["order_total"] * 100) == total_cents
        last = chain[-1]
        if last["event_type"] == DELIVERED:
            minutes = (times[-1] - times[0]) / 60_000
            assert last["delivery_minutes"] == pytest.approx(minutes, abs=0.006)
            assert 17 <= last["delivery_minutes"] <= 65
            assert last["courier_id"] is not None
        else:
            assert last["cancel_reason"] in {
                "restaurant_rejected",
                "customer_cancelled",
                "no_courier_available",
                "delivery_failed",
            }
    return by_order


# ---- pure helpers --------------------------------------------------------------------------------


def test_parse_both_event_time_styles() -> None:
    assert parse_event_time_ms("2018-03-07T16:16:17+00:00") == 1520439377000
    assert parse_event_time_ms("2026-09-08T00:24:20.990Z") == 1788827060990
    assert format_event_time(1788827060990) == "2026-09-08T00:24:20.990Z"
    assert format_event_time(1520439377000) == "2018-03-07T16:16:17.000Z"
    with pytest.raises(ValueError):
        parse_event_time_ms("2018-03-07T16:16:17")


def test_event_ids_are_uuid5_of_seed_order_and_type() -> None:
    expected = uuid.uuid5(orders.EVENT_ID_NAMESPACE, "42/ord-london-201803071616-0001/placed")
    assert orders.event_id(42, "ord-london-201803071616-0001", "placed") == str(expected)
    assert orders.event_id(43, "ord-london-201803071616-0001", "placed") != str(expected)


def test_market_for_wiki_accepts_settings_and_mappings(settings) -> None:
    assert market_for_wiki("enwiki", settings) == "new-york"
    assert market_for_wiki("dewiki", settings) == "berlin"
    assert market_for_wiki("nosuchwiki", settings) == settings.get("markets.default")
    assert market_for_wiki("dewiki", settings.data) == "berlin"
    assert market_for_wiki("dewiki", MARKETS) == "berlin"
    assert market_for_wiki("xxwiki", {"default": "oslo", "wikis": {}}) == "oslo"
    assert market_for_wiki("frwiki", {"frwiki": "paris"}) == "paris"
    assert market_for_wiki("xxwiki", {"frwiki": "paris"}) == "springfield"


def test_order_counts_are_poisson_with_the_mean_and_variance() -> None:
    # One draw per (seed, market, minute) key, as the generator draws them: across keys they are Poisson(mean).
    for lam in (0.5, 4.0, 35.0, 400.0):
        draws = [order_count(1, "london", minute * 60_000, lam) for minute in range(4000)]
        mean = sum(draws) / len(draws)
        var = sum((d - mean) ** 2 for d in draws) / len(draws)
        assert mean == pytest.approx(lam, rel=0.06, abs=0.05)
        assert var == pytest.approx(lam, rel=0.15, abs=0.1)
    assert order_count(1, "london", 0, 0.0) == 0
    # A pure function of the key and the mean.
    assert order_count(7, "berlin", 120_000, 12.5) == order_count(7, "berlin", 120_000, 12.5)
    assert len({order_count(seed, "berlin", 120_000, 12.5) for seed in range(20)}) > 1


def test_entities_are_deterministic_and_well_formed() -> None:
    london = build_market("london", 42)
    assert london == build_market("london", 42)
    assert london.restaurants != build_market("london", 43).restaurants
    assert len(london.restaurants) == 40 and len(london.couriers) == 60 and london.customers == 5000
    assert london.restaurants[6].restaurant_id == "rst-london-0007"
    assert london.restaurants[6].menu[2].item_id == "itm-london-0007-03"
    assert all(len(r.menu) == 12 for r in london.restaurants)
    assert london.couriers[11].courier_id == "cur-london-0012"
    assert london.customer_id(123) == "cus-london-00123"
    assert london.currency == "GBP"
    prices = [item.price_cents for r in london.restaurants for item in r.menu]
    assert min(prices) >= 150 and max(prices) <= 3000
    assert len({r.name for r in london.restaurants}) > 30
    tokyo = build_market("tokyo", 42, restaurants=3, items_per_restaurant=4, couriers=2, customers=10)
    assert tokyo.currency == "JPY" and len(tokyo.restaurants) == 3 and len(tokyo.restaurants[0].menu) == 4
    assert all(item.price_cents % 1000 == 0 for r in tokyo.restaurants for item in r.menu)


# ---- the generator over the wikidata recording ---------------------------------------------------


def test_same_seed_same_events_different_seed_different(settings, wikidata_events) -> None:
    again = list(generator_from_settings(settings, seed=42).generate(read_demand_file(WIKIDATA_FILE)))
    other = list(generator_from_settings(settings, seed=43).generate(read_demand_file(WIKIDATA_FILE)))
    assert len(wikidata_events) > 1000
    assert digest(again) == digest(wikidata_events)
    assert digest(other) != digest(wikidata_events)


def test_lifecycles_are_valid(wikidata_events) -> None:
    by_order = check_lifecycles(wikidata_events)
    endings = Counter(chain[-1]["event_type"] for chain in by_order.values())
    assert endings[DELIVERED] + endings[CANCELLED] == len(by_order)
    assert 0.01 < endings[CANCELLED] / len(by_order) < 0.10
    assert {e["market"] for e in wikidata_events} == {"london"}
    assert {e["currency"] for e in wikidata_events} == {"GBP"}
    assert {e["demand_wiki"] for e in wikidata_events} == {"wikidatawiki"}


def test_event_times_never_decrease_and_ids_are_unique(wikidata_events) -> None:
    times = [epoch_ms(e) for e in wikidata_events]
    assert times == sorted(times)
    ids = [e["event_id"] for e in wikidata_events]
    assert len(set(ids)) == len(ids)
    assert all(e["event_time"].endswith("Z") and len(e["event_time"]) == 24 for e in wikidata_events)


def test_order_totals_are_realistic(wikidata_events) -> None:
    totals = [e["order_total"] for e in wikidata_events if e["event_type"] == PLACED]
    mean = sum(totals) / len(totals)
    assert 15 <= mean <= 45, mean
    assert min(totals) > 1 and max(totals) < 250
    assert all(round(t, 2) == t for t in totals)


def test_orders_follow_the_recorded_demand(settings, wikidata_events) -> None:
    edits = sum(1 for _ in read_demand_file(WIKIDATA_FILE))
    orders_placed = sum(1 for e in wikidata_events if e["event_type"] == PLACED)
    expected = edits * settings.get("firehose.orders_per_edit")
    assert expected * 0.85 < orders_placed < expected * 1.15
    # The placements of a minute lie inside that minute and follow its edit count.
    edits_per_minute = Counter(e["meta"]["dt"][:16] for e in read_demand_file(WIKIDATA_FILE))
    placed_per_minute = Counter(e["event_time"][:16] for e in wikidata_events if e["event_type"] == PLACED)
    assert set(placed_per_minute) == set(edits_per_minute)
    assert placed_per_minute["2018-03-07T16:21"] < placed_per_minute["2018-03-07T16:20"]


def test_modern_events_and_canaries(settings) -> None:
    modern = list(read_demand_file(MODERN_FILE))
    canary = {"wiki": "enwiki", "meta": {"dt": "2026-09-08T00:24:30.000Z", "domain": "canary"}}
    broken = [
        {"wiki": "enwiki"},
        {"meta": {"dt": "2026-09-08T00:24:31.000Z"}},
        {"wiki": "enwiki", "meta": {}},
    ]
    generator = generator_from_settings(settings, orders_per_edit=50.0, **SMALL)
    events = list(generator.generate([*modern, canary, *broken]))
    assert generator.stats.demand_events == 2
    assert generator.stats.skipped_events == 4
    assert {e["market"] for e in events} == {"new-york", "london"}
    assert {e["currency"] for e in events} == {"USD", "GBP"}
    check_lifecycles(events)


# ---- demand drives the rate ----------------------------------------------------------------------


def test_order_rate_follows_demand() -> None:
    demand = synthetic_demand({"enwiki": 200, "dewiki": 20}, minutes=10)
    events = list(OrderGenerator(seed=5, markets=MARKETS, orders_per_edit=0.5, **SMALL).generate(demand))
    placed = Counter(e["market"] for e in events if e["event_type"] == PLACED)
    assert set(placed) == {"new-york", "berlin"}
    assert 5 <= placed["new-york"] / placed["berlin"] <= 20
    assert 850 <= placed["new-york"] <= 1150
    check_lifecycles(events)


def test_orders_per_edit_scales_the_rate() -> None:
    demand = synthetic_demand({"enwiki": 100}, minutes=5)
    low = sum(e["event_type"] == PLACED for e in OrderGenerator(seed=1, orders_per_edit=0.2, **SMALL).generate(demand))
    high = sum(e["event_type"] == PLACED for e in OrderGenerator(seed=1, orders_per_edit=2.0, **SMALL).generate(demand))
    assert 5 <= high / low <= 20


def test_zero_demand_zero_orders() -> None:
    assert list(OrderGenerator(seed=1, markets=MARKETS, **SMALL).generate([])) == []
    demand = synthetic_demand({"enwiki": 50}, minutes=3)
    assert list(OrderGenerator(seed=1, markets=MARKETS, orders_per_edit=0.0, **SMALL).generate(demand)) == []


def test_repeated_demand_events_count_once() -> None:
    demand = synthetic_demand({"enwiki": 80}, minutes=3)
    for number, event in enumerate(demand):
        event["meta"]["id"] = f"id-{number}"
    repeated = [*demand[:100], *demand[50:]]  # a resumed stream repeats 50 events
    once = list(OrderGenerator(seed=8, markets=MARKETS, **SMALL).generate(demand))
    generator = OrderGenerator(seed=8, markets=MARKETS, **SMALL)
    assert list(generator.generate(repeated)) == once
    assert generator.stats.duplicate_events == 50
    assert generator.stats.demand_events == len(demand)


def test_late_and_out_of_order_demand_keeps_event_time_order() -> None:
    demand = synthetic_demand({"enwiki": 60, "dewiki": 30, "frwiki": 10}, minutes=6)
    rng = random.Random(3)
    # Shuffle within small windows and add some events that arrive minutes late.
    jittered = []
    for start in range(0, len(demand), 25):
        chunk = demand[start : start + 25]
        rng.shuffle(chunk)
        jittered += chunk
    late = [demand_event("enwiki", 1_780_000_020_000 + i * 1000) for i in range(20)]
    jittered[len(jittered) // 2 : len(jittered) // 2] = late
    generator = OrderGenerator(seed=9, markets=MARKETS, **SMALL)
    events = list(generator.generate(jittered))
    assert generator.stats.late_events >= 20
    assert generator.stats.demand_events == len(jittered)
    times = [epoch_ms(e) for e in events]
    assert times == sorted(times)
    check_lifecycles(events)
    assert Counter(e["market"] for e in events)["springfield"] > 0  # frwiki is not mapped in MARKETS


def test_events_are_released_as_the_demand_clock_advances() -> None:
    generator = OrderGenerator(seed=2, markets=MARKETS, orders_per_edit=1.0, **SMALL)
    released: list[dict[str, Any]] = []
    start = 1_780_000_020_000  # 20 s into a minute
    for event in synthetic_demand({"enwiki": 100}, minutes=3, start_ms=start):
        out = generator.feed(event)
        assert all(epoch_ms(e) < generator.demand_clock_ms for e in out)
        released += out
    assert released, "nothing released while the demand advanced"
    assert all(e["event_type"] == PLACED for e in released[:10])
    rest = generator.finish()
    assert generator.finish() == []
    assert epoch_ms(rest[0]) >= epoch_ms(released[-1])
    with pytest.raises(RuntimeError):
        generator.feed(demand_event("enwiki", start))


def test_same_counts_give_the_same_orders_regardless_of_other_markets() -> None:
    alone = synthetic_demand({"enwiki": 40}, minutes=3)
    mixed = sorted(
        alone + synthetic_demand({"dewiki": 25}, minutes=3, seed=11),
        key=lambda e: parse_event_time_ms(e["meta"]["dt"]),
    )
    a = [e for e in OrderGenerator(seed=4, markets=MARKETS, **SMALL).generate(alone)]
    b = [e for e in OrderGenerator(seed=4, markets=MARKETS, **SMALL).generate(mixed) if e["market"] == "new-york"]
    assert digest(a) == digest(b)


# ---- the event log -------------------------------------------------------------------------------


def test_order_log_from_file_serves_the_generated_sequence(settings, wikidata_events) -> None:
    log = OrderLog.from_file(WIKIDATA_FILE, generator_from_settings(settings, seed=42)).start()
    assert log.wait_finished(timeout=25)
    assert log.error is None
    stop = threading.Event()
    rows = list(log.read(0, stop))
    assert [offset for offset, _, _ in rows] == list(range(len(wikidata_events)))
    assert [json.loads(data) for _, _, data in rows] == wikidata_events
    assert all(at == epoch_ms(json.loads(data)) / 1000 for _, at, data in rows[:500])
    # Resuming from an offset gives the tail.
    assert [o for o, _, _ in log.read(len(rows) - 3, stop)] == [len(rows) - 3, len(rows) - 2, len(rows) - 1]
    assert list(log.read(len(rows), stop)) == []
    # offset_for_time finds the first event at or after a time.
    middle = rows[len(rows) // 2][1]
    first = log.offset_for_time(middle)
    assert rows[first][1] == middle and (first == 0 or rows[first - 1][1] < middle)
    assert log.offset_for_time(0) == 0
    assert log.offset_for_time(rows[-1][1] + 1) == len(rows)
    with pytest.raises(ValueError):
        next(log.read(-1, stop))
    log.close()


class LiveDemand:
    """A demand iterable fed by the test, like a live SSE stream."""

    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self.queue.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self.closed = True
        self.queue.put(None)


def test_order_log_read_blocks_while_live_and_returns_when_finished() -> None:
    demand = LiveDemand()
    log = OrderLog(demand, OrderGenerator(seed=3, markets=MARKETS, orders_per_edit=1.0, **SMALL)).start()
    received: list[tuple[int, float | None, str]] = []
    stop = threading.Event()
    done = threading.Event()

    def reader() -> None:
        received.extend(log.read(0, stop))
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    events = synthetic_demand({"enwiki": 30}, minutes=4)
    for event in events[: len(events) // 2]:
        demand.queue.put(event)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received, "the reader saw nothing while demand was live"
    assert not done.is_set(), "read returned while the demand was still live"
    for event in events[len(events) // 2 :]:
        demand.queue.put(event)
    demand.queue.put(None)
    assert done.wait(timeout=10)
    expected = list(OrderGenerator(seed=3, markets=MARKETS, orders_per_edit=1.0, **SMALL).generate(events))
    assert [json.loads(data) for _, _, data in received] == expected
    log.close()


def test_order_log_stop_ends_a_blocked_read() -> None:
    demand = LiveDemand()
    log = OrderLog(demand, OrderGenerator(seed=3, **SMALL)).start()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert list(log.read(0, stop)) == []
    assert time.monotonic() - started < 5
    log.close()
    assert demand.closed and log.finished


def test_order_log_retention_error_is_clear() -> None:
    demand = synthetic_demand({"enwiki": 50}, minutes=4)
    log = OrderLog(demand, OrderGenerator(seed=3, markets=MARKETS, **SMALL), retention=40).start()
    assert log.wait_finished(timeout=10)
    total = len(log)
    assert total > 100 and log.first_offset > 0 and total - log.first_offset >= 40
    tail = list(log.read(log.first_offset, threading.Event()))
    assert [o for o, _, _ in tail] == list(range(log.first_offset, total))
    with pytest.raises(OffsetOutOfRetention, match="no longer retained"):
        next(log.read(0, threading.Event()))


def test_order_log_reports_a_failing_demand() -> None:
    def failing() -> Iterator[dict[str, Any]]:
        yield from synthetic_demand({"enwiki": 10}, minutes=2)
        raise ConnectionError("demand went away")

    log = OrderLog(failing(), OrderGenerator(seed=3, markets=MARKETS, **SMALL)).start()
    assert log.wait_finished(timeout=10)
    assert isinstance(log.error, ConnectionError)
    assert log.stats()["error"] == "ConnectionError: demand went away"
    # Readers get what was released before the failure and do not hang; nothing is flushed after an error.
    reference = OrderGenerator(seed=3, markets=MARKETS, **SMALL)
    expected = [e for d in synthetic_demand({"enwiki": 10}, minutes=2) for e in reference.feed(d)]
    assert [json.loads(data) for _, _, data in log.read(0, threading.Event())] == expected


# ---- command line --------------------------------------------------------------------------------


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    orders.add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--seed", "7", "--demand-file", str(WIKIDATA_FILE), "--drop-every", "5"])
    assert args.port == 0 and args.seed == 7 and args.demand_file == WIKIDATA_FILE and args.drop_every == 5
    assert args.demand_url is None and args.rate is None and args.orders_per_edit is None
    assert orders.pacing_from_args(args).rate is None and orders.pacing_from_args(args).speedup is None
    assert orders.pacing_from_args(parser.parse_args(["--rate", "50"])).rate == 50
    assert orders.pacing_from_args(parser.parse_args(["--rate", "0"])).rate is None
    assert orders.pacing_from_args(parser.parse_args(["--speedup", "4"])).speedup == 4
    with pytest.raises(ValueError):
        orders.pacing_from_args(parser.parse_args(["--rate", "-1"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "5", "--max"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--demand-file", "a.jsonl", "--demand-url", "http://127.0.0.1:1/x"])


def test_generator_from_settings_reads_the_settings(settings) -> None:
    generator = generator_from_settings(settings)
    assert generator.seed == settings.get("firehose.seed")
    assert generator.orders_per_edit == settings.get("firehose.orders_per_edit")
    assert generator.market_for_wiki("jawiki") == "tokyo"
    assert generator_from_settings(settings, seed=9, orders_per_edit=None).seed == 9


def test_event_time_format_is_iso_utc(wikidata_events) -> None:
    for event in wikidata_events[:200]:
        parsed = datetime.strptime(event["event_time"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert parsed.utcoffset().total_seconds() == 0


# ---- end to end over SSE -------------------------------------------------------------------------


class ListLog:
    """A finished event log over a list of JSON strings (serves the demand recording in the tests)."""

    topic = "eqiad.mediawiki.recentchange"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        for position in range(offset, len(self.lines)):
            if stop.is_set():
                return
            yield position, None, self.lines[position]

    def offset_for_time(self, epoch_seconds: float) -> int:
        return 0


def read_sse(url: str, count: int, *, last_event_id: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Reads ``count`` events with the resumable client; returns them and the client's stats."""
    from airlake.sources.sse import SseStream

    got = []
    with SseStream(url, user_agent="airlake-tests/0.1", last_event_id=last_event_id, backoff_initial=0.05) as stream:
        for event in stream:
            got.append(event)
            if len(got) == count:
                break
        return got, dict(stream.stats)


@pytest.mark.integration
def test_served_orders_survive_drops_and_resume_exactly(settings, wikidata_events) -> None:
    from airlake.sources.sse_server import Faults, SseServer

    log = OrderLog.from_file(WIKIDATA_FILE, generator_from_settings(settings, seed=42)).start()
    assert log.wait_finished(timeout=25)
    server = SseServer(port=0)
    server.retry_ms = 20
    server.add_stream(orders.STREAM_PATH, log, faults=Faults(drop_every=1500))
    server.add_stream("/plain", log)
    server.start()
    try:
        url = server.url(orders.STREAM_PATH)
        events, stats = read_sse(url, len(wikidata_events))
        assert stats["reconnects"] >= len(wikidata_events) // 1500
        assert [json.loads(e.data) for e in events] == wikidata_events
        offsets = [json.loads(e.id)[0]["offset"] for e in events]
        assert offsets == list(range(len(wikidata_events)))
        assert {json.loads(e.id)[0]["topic"] for e in events} == {"airlake.orders"}
        # A new client that resumes from a Last-Event-ID gets exactly the rest.
        head, _ = read_sse(server.url("/plain"), 1234)
        tail, _ = read_sse(server.url("/plain"), len(wikidata_events) - 1234, last_event_id=head[-1].id)
        assert [json.loads(e.data) for e in head + tail] == wikidata_events
        assert server.stats[orders.STREAM_PATH]["log"]["events"] == len(wikidata_events)
    finally:
        server.stop()
        log.close()


@pytest.mark.integration
def test_orders_from_demand_read_over_sse(settings) -> None:
    from airlake.sources.sse_server import SseServer

    lines = [line for line in WIKIDATA_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    canary = json.dumps({"wiki": "enwiki", "meta": {"dt": "2018-03-07T16:20:00+00:00", "domain": "canary"}})
    lines.insert(2000, canary)
    server = SseServer(port=0)
    server.add_stream("/v2/stream/recentchange", ListLog(lines))
    server.start()
    generator = generator_from_settings(settings, seed=42)
    # max_retries=0: the demand ends at the recording's end instead of waiting for more.
    log = OrderLog.from_url(
        server.url("/v2/stream/recentchange"), generator, user_agent="airlake-tests/0.1", max_retries=0
    ).start()
    try:
        assert log.wait_finished(timeout=25)
        assert generator.stats.demand_events == len(lines) - 1  # the canary was dropped
        # Over a live URL the order ids carry the log identity; otherwise the orders are those of the file.
        assert generator.id_namespace == log.log_id
        reference = generator_from_settings(settings, seed=42, id_namespace=log.log_id)
        expected = [e for demand in read_demand_file(WIKIDATA_FILE) for e in reference.feed(demand)]
        assert all(e["order_id"].endswith(f"-{log.log_id}") for e in expected)
        assert expected
        got = [json.loads(data) for _, _, data in log.read(0, threading.Event())]
        assert got == expected
    finally:
        log.close()
        server.stop()


@pytest.mark.integration
def test_cli_serves_orders(tmp_path, wikidata_events) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLAKE")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "airlake", "firehose", "orders", "--port", "0", "--demand-file"]
    process = subprocess.Popen(
        [*command, str(WIKIDATA_FILE), "--drop-every", "3000"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v2/stream/orders) ", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        url = match.group(1)
        events, _ = read_sse(url, len(wikidata_events))
        assert [json.loads(e.data) for e in events] == wikidata_events
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()


@pytest.mark.integration
def test_order_logs_over_different_demand_urls_never_share_ids(settings) -> None:
    from airlake.sources.sse_server import SseServer

    lines = [line for line in WIKIDATA_FILE.read_text(encoding="utf-8").splitlines() if line.strip()][:1500]
    servers, logs = [], []
    try:
        for _ in range(2):  # two runs over the same demand content, as two demos in a row over a replay
            server = SseServer(port=0)
            server.add_stream("/v2/stream/recentchange", ListLog(lines))
            server.start()
            servers.append(server)
            generator = generator_from_settings(settings, seed=42)
            url = server.url("/v2/stream/recentchange")
            logs.append(OrderLog.from_url(url, generator, user_agent="airlake-tests/0.1", max_retries=0).start())
        for log in logs:
            assert log.wait_finished(timeout=25)
        first, second = ([json.loads(data) for _, _, data in log.read(0, threading.Event())] for log in logs)
        assert first and len(first) == len(second)
        assert logs[0].log_id != logs[1].log_id
        assert not {e["order_id"] for e in first} & {e["order_id"] for e in second}
        assert not {e["event_id"] for e in first} & {e["event_id"] for e in second}
        # Apart from the ids, the orders are the same function of the seed and the demand.
        strip = [{k: v for k, v in e.items() if k not in ("order_id", "event_id")} for e in first]
        assert strip == [{k: v for k, v in e.items() if k not in ("order_id", "event_id")} for e in second]
    finally:
        for log in logs:
            log.close()
        for server in servers:
            server.stop()


def test_order_log_identity_over_a_file_is_stable(settings, tmp_path) -> None:
    make = functools.partial(generator_from_settings, settings)
    first = OrderLog.from_file(WIKIDATA_FILE, make(seed=42))
    assert first.log_id == OrderLog.from_file(WIKIDATA_FILE, make(seed=42)).log_id
    assert first.log_id != OrderLog.from_file(WIKIDATA_FILE, make(seed=43)).log_id
    assert first.log_id != OrderLog.from_file(WIKIDATA_FILE, make(seed=42, orders_per_edit=0.7)).log_id
    shorter = tmp_path / "demand.jsonl"
    shorter.write_bytes(WIKIDATA_FILE.read_bytes()[:100_000])
    assert first.log_id != OrderLog.from_file(shorter, make(seed=42)).log_id
    # A log over a live demand cannot be reproduced: each start is a new log.
    assert OrderLog([], make(seed=42)).log_id != OrderLog([], make(seed=42)).log_id
