"""The speed aggregates' minute state: on time, late, too late, from the future, and across a restart."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from airlake.catalog import load_catalog
from airlake.lake.schemas import DEMAND_MINUTE
from airlake.pipelines.speed import MinuteState, SpeedPipeline, floor_minute
from airlake.pipelines.transforms import event_key, staged_schema

NOW = floor_minute(datetime.now(UTC))


def partials(*rows: tuple[datetime, int]) -> pa.Table:
    """Partial demand aggregates: (minute, events) for enwiki in new-york."""
    return pa.Table.from_pylist(
        [
            {
                "window_start": minute,
                "market": "new-york",
                "wiki": "enwiki",
                "events": n,
                "edits": n,
                "new_pages": 0,
                "bot_events": 0,
                "bytes_delta": 0,
            }
            for minute, n in rows
        ],
        schema=staged_schema(DEMAND_MINUTE),
    )


def state(lateness_minutes: float = 10) -> MinuteState:
    return MinuteState(DEMAND_MINUTE, timedelta(minutes=lateness_minutes), timedelta(minutes=5))


def values(firings: list[dict]) -> dict[datetime, int]:
    return {f["window_start"]: f["events"] for f in firings}


def test_on_time_partials_accumulate_per_minute():
    s = state()
    assert values(s.merge(partials((NOW, 2), (NOW + timedelta(minutes=1), 1)), NOW)[0]) == {
        NOW: 2,
        NOW + timedelta(minutes=1): 1,
    }
    firings, late = s.merge(partials((NOW, 3)), NOW)
    assert (values(firings), late) == ({NOW: 5}, 0)


def test_late_within_the_lateness_fires_again_and_beyond_it_is_dropped():
    s = state(lateness_minutes=10)
    s.merge(partials((NOW - timedelta(minutes=9), 1), (NOW, 1)), NOW)
    firings, late = s.merge(partials((NOW - timedelta(minutes=9), 4)), NOW)
    assert (values(firings), late) == ({NOW - timedelta(minutes=9): 5}, 0)
    firings, late = s.merge(partials((NOW - timedelta(minutes=11), 1)), NOW)
    assert (firings, late) == ([], 1)
    assert NOW - timedelta(minutes=11) not in {k[0] for k in s.state}


def test_a_future_minute_does_not_move_the_watermark_past_receive_time_plus_the_margin():
    s = state(lateness_minutes=10)
    s.merge(partials((NOW - timedelta(minutes=3), 1)), NOW)
    firings, late = s.merge(partials((NOW + timedelta(days=365), 1)), NOW)
    assert late == 0 and s.watermark == NOW + timedelta(minutes=5)
    firings, late = s.merge(partials((NOW - timedelta(minutes=2), 1), (NOW - timedelta(minutes=3), 1)), NOW)
    assert late == 0
    assert values(firings) == {NOW - timedelta(minutes=2): 1, NOW - timedelta(minutes=3): 2}


def test_without_a_receive_time_the_watermark_follows_the_data():
    s = state(lateness_minutes=10)
    s.merge(partials((NOW + timedelta(days=1), 1)))
    assert s.watermark == NOW + timedelta(days=1)


# ----- the driver: dead letters for impossible times, and the minute at the restart horizon ---------------------
def recentchange(event_id: str, when: datetime) -> str:
    return json.dumps(
        {
            "meta": {"id": event_id, "dt": when.isoformat(), "domain": "en.wikipedia.org"},
            "wiki": "enwiki",
            "type": "edit",
        }
    )


def events(*items: tuple[str, datetime]) -> list[tuple]:
    """Reader tuples (source, sse_id, received_at, data, key, error), received now."""
    out = []
    for event_id, when in items:
        data = recentchange(event_id, when)
        sse_id = json.dumps([{"topic": "t", "partition": 0, "offset": len(out), "log": "test"}])
        out.append(("recentchange", sse_id, time.time(), data, event_key("recentchange", sse_id, data, None), None))
    return out


@pytest.fixture
def driver(settings):
    started: list[SpeedPipeline] = []

    def start(lateness_minutes: float = 60) -> SpeedPipeline:
        p = SpeedPipeline(
            load_catalog(settings),
            [],
            state_dir=settings.state_dir,
            markets={"enwiki": "new-york"},
            default_market="springfield",
            allowed_lateness_minutes=lateness_minutes,
        )
        p.take_lease()
        p.open_tables()
        p.recover()
        started.append(p)
        return p

    yield start
    for p in started:
        p.lease.release()


def latest_demand(p: SpeedPipeline) -> dict[datetime, int]:
    table = p.catalog.load_table(DEMAND_MINUTE.identifier)
    latest: dict[datetime, tuple] = {}
    for row in table.scan().to_arrow().to_pylist():
        key = row["window_start"]
        if key not in latest or row["batch"] >= latest[key][0]:
            latest[key] = (row["batch"], row["events"])
    return {k: v[1] for k, v in latest.items()}


def test_an_event_a_year_ahead_is_a_dead_letter_and_the_others_count(driver):
    p = driver()
    base = NOW - timedelta(minutes=30)
    batch = events(("a", base + timedelta(seconds=5)), ("b", base + timedelta(seconds=50)))
    batch += events(("future", NOW + timedelta(days=365)))
    batch += events(("c", base + timedelta(minutes=1, seconds=1)))
    assert p.run_batch(batch, {"recentchange": batch[-1][1]})
    letters = p.catalog.load_table("raw.dead_letters").scan().to_arrow().to_pylist()
    assert [r["dead_letter_id"] for r in letters] == ["recentchange:future"]
    assert "after the event was received" in letters[0]["error"]
    assert p.catalog.load_table("raw.recentchange").scan().to_arrow().num_rows == 3
    later = events(("d", base + timedelta(minutes=2)))
    assert p.run_batch(later, {"recentchange": later[-1][1]})
    assert latest_demand(p) == {base: 2, base + timedelta(minutes=1): 1, base + timedelta(minutes=2): 1}
    assert p.progress.late_dropped == 0


def test_the_minute_at_the_restart_horizon_is_rebuilt_whole(driver):
    base = NOW - timedelta(hours=2)
    first = driver(lateness_minutes=60)
    batch = events(("a", base + timedelta(seconds=10)), ("b", base + timedelta(seconds=50)))
    batch += events(("newest", base + timedelta(minutes=60, seconds=30)))
    assert first.run_batch(batch, {"recentchange": batch[-1][1]})
    first.lease.release()
    # After a restart the horizon is 60 minutes before the newest event (base + 30 s), floored to its minute.
    second = driver(lateness_minutes=60)
    late = events(("late", base + timedelta(seconds=20)))
    assert second.run_batch(late, {"recentchange": late[-1][1]})
    assert latest_demand(second)[base] == 3  # a, b and the late one: not an undercount of the rebuilt minute
    assert second.progress.late_dropped == 0
