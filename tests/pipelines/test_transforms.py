"""The Beam composites, with TestPipeline/assert_that, and their windowing with TestStream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from airlake.pipelines.transforms import (
    DEAD_LETTER_TAG,
    ORDERS_TAG,
    RECENTCHANGE_TAG,
    DemandPerMinute,
    MinuteWindows,
    Normalize,
    OrdersPerMinute,
    envelope,
    event_key,
)
from tests.conftest import MODERN_SAMPLES, RECORDING_2018

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC).timestamp()  # after every event of these tests


def rc(event_id: str, seconds: float, wiki: str = "enwiki", kind: str = "edit", bot: bool = False) -> dict:
    return {
        "event_id": event_id,
        "event_time": datetime.fromtimestamp(T0.timestamp() + seconds, UTC),
        "wiki": wiki,
        "type": kind,
        "bot": bot,
        "length_old": 100,
        "length_new": 110,
    }


def order(event_id: str, seconds: float, kind: str, total: str = "20.50", market: str = "london", minutes=None) -> dict:
    return {
        "event_id": event_id,
        "event_time": datetime.fromtimestamp(T0.timestamp() + seconds, UTC),
        "event_type": kind,
        "market": market,
        "order_total": Decimal(total),
        "delivery_minutes": minutes,
    }


def test_normalize_routes_valid_invalid_and_drops_canaries():
    lines = RECORDING_2018.read_text().splitlines()[:50] + MODERN_SAMPLES.read_text().splitlines()
    canary = json.dumps({"meta": {"id": "c1", "domain": "canary", "dt": "2026-01-01T00:00:00Z"}, "wiki": "x"})
    incomplete = json.dumps({"meta": {"id": "i1"}, "wiki": "enwiki", "type": "edit"})
    order_ok = json.dumps(
        {
            "event_id": "o1",
            "event_type": "placed",
            "event_time": "2026-11-25T12:00:00.000Z",
            "order_id": "ord-1",
            "market": "london",
            "order_total": 12.3,
            "items": [{"menu_item_id": "m", "name": "Pie", "quantity": 1, "unit_price": 12.3}],
        }
    )
    order_bad = json.dumps({"event_id": "o2", "event_type": "teleported", "event_time": "2026-11-25T12:00:00Z"})
    order_ahead = order_ok.replace('"o1"', '"o3"').replace("2026-11-25T12", "2027-12-01T00")  # a year ahead
    inputs = [envelope("recentchange", f"id{i}", RECEIVED, line) for i, line in enumerate(lines)]
    inputs += [
        envelope("recentchange", "c", RECEIVED, canary),
        envelope("recentchange", "m", RECEIVED, '{"meta": {"id": "trunc'),
        envelope("recentchange", "i", RECEIVED, incomplete),
        envelope("orders", "o1", RECEIVED, order_ok),
        envelope("orders", "o2", RECEIVED, order_bad),
        envelope("orders", "o3", RECEIVED, order_ahead),
        envelope("recentchange", "big", RECEIVED, '{"meta": {"id": "x', "SSE event of 10,485,760+ bytes is too large"),
        "not an envelope",
    ]
    with TestPipeline() as p:
        out = p | beam.Create(inputs) | Normalize()
        assert_that(
            out[RECENTCHANGE_TAG] | "RcIds" >> beam.Map(lambda r: r["event_id"]),
            equal_to([json.loads(line)["meta"]["id"] for line in lines]),
            label="recentchange",
        )
        assert_that(out[ORDERS_TAG] | "OrderIds" >> beam.Map(lambda r: r["event_id"]), equal_to(["o1"]), label="orders")
        assert_that(
            out[DEAD_LETTER_TAG] | "Reasons" >> beam.Map(lambda r: (r["source"], r["error"].split(":")[0])),
            equal_to(
                [
                    ("recentchange", "malformed JSON"),
                    ("recentchange", "missing field meta.dt"),
                    ("orders", "unknown event_type 'teleported'"),
                    ("orders", "event_time 2027-12-01T00"),
                    ("recentchange", "SSE event of 10,485,760+ bytes is too large"),
                    ("unknown", "unreadable envelope"),
                ]
            ),
            label="dead_letters",
        )


def test_event_key_is_the_dead_letter_id_and_stable():
    data = '{"meta": {"id": "abc"}}'
    assert event_key("recentchange", "x", data, json.loads(data)) == "recentchange:abc"
    bad = "{broken"
    assert event_key("recentchange", "x", bad, None) == event_key("recentchange", "x", bad, None)
    assert event_key("recentchange", "x", bad, None) != event_key("recentchange", "y", bad, None)


def test_demand_per_minute_counts_by_market_and_minute():
    rows = [rc("a", 1), rc("b", 30, kind="new"), rc("c", 61, bot=True), rc("d", 5, wiki="dewiki")]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | DemandPerMinute({"enwiki": "new-york", "dewiki": "berlin"}, "springfield")
        assert_that(
            out
            | beam.Map(
                lambda r: (
                    r["window_start"].minute,
                    r["market"],
                    r["events"],
                    r["edits"],
                    r["new_pages"],
                    r["bot_events"],
                    r["bytes_delta"],
                )
            ),
            equal_to(
                [
                    (0, "new-york", 2, 1, 1, 0, 20),
                    (1, "new-york", 1, 1, 0, 1, 10),
                    (0, "berlin", 1, 1, 0, 0, 10),
                ]
            ),
        )


def test_orders_per_minute_gmv_and_delivery_minutes():
    rows = [
        order("1", 1, "placed", "10.10"),
        order("2", 2, "placed", "5.05"),
        order("3", 50, "delivered", "10.10", minutes=31.5),
        order("4", 59, "cancelled", "5.05"),
        order("5", 70, "accepted", "7.00", market="paris"),
    ]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | OrdersPerMinute()
        assert_that(
            out
            | beam.Map(
                lambda r: (
                    r["window_start"].minute,
                    r["market"],
                    r["placed"],
                    r["accepted"],
                    r["delivered"],
                    r["cancelled"],
                    str(r["gmv_placed"]),
                    str(r["gmv_delivered"]),
                    r["delivery_minutes_sum"],
                )
            ),
            equal_to(
                [
                    (0, "london", 2, 0, 1, 1, "15.15", "10.10", 31.5),
                    (1, "paris", 0, 1, 0, 0, "0.00", "0.00", 0.0),
                ]
            ),
        )


def streaming_pipeline() -> TestPipeline:
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(options=options)


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        # on time only: one firing when the watermark passes the end of the minute
        ("on_time", [3]),
        # an early firing after 5 s of processing time, then the on-time firing accumulates
        ("early", [2, 3]),
        # on time, then one late element within the allowed lateness: a late firing with the new total
        ("late", [3, 4]),
        # a late element beyond the allowed lateness is dropped from the speed layer
        ("too_late", [3]),
    ],
)
def test_minute_windows_early_on_time_and_late_firings(scenario: str, expected: list[int]):
    base = T0.timestamp()
    stream = TestStream().advance_watermark_to(base)
    stream = stream.add_elements([TimestampedValue(rc("a", 1), base + 1), TimestampedValue(rc("b", 2), base + 2)])
    if scenario == "early":
        stream = stream.advance_processing_time(6)
    stream = stream.add_elements([TimestampedValue(rc("c", 3), base + 3)])
    stream = stream.advance_watermark_to(base + 61)
    if scenario == "late":
        stream = stream.add_elements([TimestampedValue(rc("d", 4), base + 4)]).advance_watermark_to(base + 100)
    if scenario == "too_late":
        stream = stream.advance_watermark_to(base + 60 + 200)
        stream = stream.add_elements([TimestampedValue(rc("e", 5), base + 5)])
    stream = stream.advance_watermark_to_infinity()
    windows = MinuteWindows(early_firing_seconds=5, allowed_lateness=120)
    with streaming_pipeline() as p:
        out = p | stream | DemandPerMinute({}, "springfield", windows) | beam.Map(lambda r: r["events"])
        assert_that(out, equal_to(expected))


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_speed_layer_stages_what_the_row_wise_one_does(tmp_path, chunk_size):
    from airlake.lake.schemas import RAW_TABLES, SPEED_TABLES
    from airlake.pipelines.transforms import ReadEnvelopes, SpeedLayer, read_staged

    lines = RECORDING_2018.read_text().splitlines()[:300]
    segment = tmp_path / "segment.jsonl"
    bad = ['{"meta": {"id": "x"', json.dumps({"meta": {"id": "y"}, "wiki": "enwiki", "type": "edit"})]
    segment.write_text(
        "\n".join(envelope("recentchange", str(i), RECEIVED, line) for i, line in enumerate(lines + bad)) + "\n"
    )
    staged = {}
    for chunked in (False, True):
        stage = tmp_path / ".airlake" / f"stage-{chunked}"  # a dot folder, as the default state directory is
        with TestPipeline() as p:
            _ = (
                p
                | beam.Create([str(segment)])
                | ReadEnvelopes(chunk_size=chunk_size if chunked else None)
                | SpeedLayer(str(stage), {"wikidatawiki": "london"}, "springfield", chunked=chunked)
            )
        staged[chunked] = {t.identifier: read_staged(str(stage), t) for t in RAW_TABLES + SPEED_TABLES}
    for name, table in staged[False].items():
        other = staged[True][name]
        keys = [f.name for f in table.schema if f.name in ("event_id", "dead_letter_id", "window_start", "wiki")]
        order = [(k, "ascending") for k in keys]
        assert table.sort_by(order).equals(other.sort_by(order)), name
    assert staged[True]["raw.recentchange"].num_rows == 300
    assert staged[True]["raw.dead_letters"].num_rows == 2
    assert sum(staged[True]["speed.demand_minute"].column("events").to_pylist()) == 300
