"""Tests of the firehose reader processes (pipelines/readers.py) against real local firehoses on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from airlake.pipelines.readers import ReaderProcess, SourceSpec, ready
from airlake.sources.firehose import STREAM_PATH, TOPIC, build_log, event_time
from airlake.sources.normalize import event_key
from airlake.sources.recentchange import is_canary
from airlake.sources.sse import SseEvent
from airlake.sources.sse_server import EventLog, SseServer
from tests.conftest import RECORDING_2018

USER_AGENT = "airlake-tests/0.1 (tests@herecomestheairplane.example) requests"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def serve() -> Iterator:
    servers: list[SseServer] = []

    def start(log: EventLog) -> str:
        server = SseServer()
        server.add_stream(STREAM_PATH, log)
        server.start()
        servers.append(server)
        return server.url(STREAM_PATH)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def readers() -> Iterator:
    started: list[ReaderProcess] = []

    def start(spec: SourceSpec, position: str | None, since: datetime | None = None) -> ReaderProcess:
        reader = ReaderProcess(spec, position, since)
        started.append(reader)
        return reader

    yield start
    for reader in started:
        reader.close()


def collect(reader: ReaderProcess, n: int, timeout: float = 30.0) -> list[tuple]:
    got: list[tuple] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline and reader.error is None:
        for r in ready([reader], 0.2):
            got.extend(r.receive())
    assert reader.error is None, reader.error
    return got


def offset_of(sse_id: str) -> int:
    (assignment,) = json.loads(sse_id)
    return assignment["offset"]


def position(offset: int, log_id: str) -> str:
    return json.dumps([{"topic": TOPIC, "partition": 0, "offset": offset, "log": log_id}])


def spec(url: str, **kwargs: object) -> SourceSpec:
    return SourceSpec("recentchange", url, USER_AGENT, backoff_initial=0.05, backoff_max=0.2, **kwargs)  # type: ignore[arg-type]


def expected_from(log: EventLog, offset: int, n: int) -> list[tuple[int, str]]:
    """The (offset, data) the log serves from ``offset``, canaries dropped, as a reader should hand them on."""
    out = []
    for at, _, data in log.read(offset, threading.Event()):
        if not is_canary(SseEvent(None, "message", data, 0.0)):
            out.append((at, data))
        if len(out) == n:
            return out
    return out


def test_a_position_in_another_log_resumes_by_event_time(serve, readers, capfd: pytest.CaptureFixture) -> None:
    old = build_log(RECORDING_2018)
    since = datetime.fromtimestamp(event_time(json.loads(next(old.read(500, threading.Event()))[2])), UTC)
    # The firehose started again over another log (here: other faults, so other offsets).
    new = build_log(RECORDING_2018, duplicate_every=7)
    assert new.log_id != old.log_id
    reader = readers(spec(serve(new)), position(500, old.log_id), since)
    got = collect(reader, 300)

    start = new.offset_for_time(since.timestamp())
    assert start > 500  # resuming at the old offset would have skipped events
    assert [(offset_of(item[1]), item[3]) for item in got[:300]] == expected_from(new, start, 300)
    assert event_time(json.loads(got[0][3])) >= since.timestamp()
    assert all(len(item) == 6 and item[0] == "recentchange" and item[5] is None for item in got)
    assert all(json.loads(item[1])[0]["log"] == new.log_id for item in got)
    err = capfd.readouterr().err
    assert f"recentchange: position {position(500, old.log_id)} is not in the log the firehose serves now" in err
    assert f"resuming by event time since {since.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}" in err


def test_a_position_in_another_log_without_since_starts_the_log(serve, readers) -> None:
    new = build_log(RECORDING_2018, duplicate_every=7)
    reader = readers(spec(serve(new)), position(500, "0123456789abcdef"))
    got = collect(reader, 50)
    assert [(offset_of(item[1]), item[3]) for item in got[:50]] == expected_from(new, 0, 50)


def test_a_position_in_the_same_log_resumes_right_after_it(serve, readers) -> None:
    log = build_log(RECORDING_2018)  # a restart over the same recording serves the same log
    since = datetime(2000, 1, 1, tzinfo=UTC)  # not used: the position is valid
    reader = readers(spec(serve(build_log(RECORDING_2018))), position(500, log.log_id), since)
    got = collect(reader, 50)
    assert [(offset_of(item[1]), item[3]) for item in got[:50]] == expected_from(log, 501, 50)


class ListLog:
    """A finished log over a list of JSON strings."""

    topic = TOPIC
    log_id = "feedfacecafebeef"

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def read(self, offset: int, stop: threading.Event) -> Iterator[tuple[int, float | None, str]]:
        for at in range(offset, len(self.lines)):
            yield at, None, self.lines[at]

    def offset_for_time(self, epoch_seconds: float) -> int:
        return 0


def test_oversized_events_are_handed_on_with_their_error_under_a_byte_bounded_queue(serve, readers) -> None:
    small = [json.dumps({"meta": {"id": f"e{i}", "dt": "2018-03-07T16:16:17Z"}, "n": i}) for i in range(200)]
    huge = json.dumps({"meta": {"id": "huge"}, "blob": "z" * 300_000})
    lines = [*small[:100], huge, *small[100:]]
    url = serve(ListLog(lines))
    reader = readers(spec(url, max_line_bytes=100_000, max_event_bytes=200_000, queue_bytes=1_000), None)
    got = collect(reader, len(lines))
    assert [item[3][:40] for item in got] == [line[:40] for line in lines]
    errors = [item for item in got if item[5] is not None]
    assert len(errors) == 1
    source, sse_id, _, data, key, error = errors[0]
    assert offset_of(sse_id) == 100
    assert error == f"SSE line of {len(huge) + 6:,} bytes exceeds max_line_bytes=100,000"
    assert len(data) <= 1024 and huge.startswith(data)
    assert key == event_key(source, sse_id, data, None)
    assert all(item[5] is None and item[3] == line for item, line in zip(got, lines, strict=True) if line != huge)
